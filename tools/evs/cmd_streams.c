/*
 * cmd_streams.c -- `evs streams`: the streams of a tenant (or of every
 * tenant) with their event counts, from the index, page by page.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs streams [--tenant NAME | --all-tenants] [--prefix P] [--limit N]\n"
    "                   [--system]\n"
    "\n"
    "Print the streams of the default tenant (or of --tenant, or of every\n"
    "tenant), one JSON object per line in (tenant, name) byte order, e.g.\n"
    "  {\"tenant\":\"\",\"stream\":\"account-1\",\"events\":3,\"last_version\":2}\n"
    "events is the stream's number of events (last_version + 1). Read from\n"
    "the index: no event is read. Events without a stream are in none.\n"
    "\n"
    "Options:\n"
    "  --tenant NAME   that tenant's streams\n"
    "  --all-tenants   every tenant's streams\n"
    "  --prefix P      only streams whose name starts with P\n"
    "  --limit N       at most N streams (0 = all, the default)\n"
    "  --system        also system streams ($checkpoint-NAME); a --prefix\n"
    "                  starting with '$' lists them anyway\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

enum { OPT_PREFIX = 0x100, OPT_LIMIT, OPT_SYSTEM };

static const struct option options[] = {
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"system", no_argument, NULL, OPT_SYSTEM},
    CLI_SCOPE_OPTIONS,
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"streams", help, options};

/* Streams asked for per call: a page of the listing in memory at once. */
#define PAGE 1000

int cmd_streams(cli_ctx *cx, int argc, char **argv)
{
    cli_scope scope = CLI_SCOPE_INIT;
    evs_list_streams_options o = EVS_LIST_STREAMS_OPTIONS_INIT;
    uint64_t limit = 0, printed = 0;
    int c, rc, status;
    evs_db *db = NULL;
    cli_buf line = {0};
    char *after_tenant = NULL, *after = NULL;

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, &scope, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_PREFIX:
            o.prefix = optarg;
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &limit) < 0)
                return cli_usage("streams", "--limit: '%s' is not a number >= 0",
                                 optarg);
            break;
        case OPT_SYSTEM:
            o.flags |= EVS_LIST_SYSTEM;
            break;
        }
    }
    if (status >= 0)
        return status;
    if ((status = cli_no_args("streams", argc, argv)) != 0 ||
        (status = cli_scope_check(&scope, "streams")) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    if (scope.all_tenants)
        o.all_tenants = 1;
    else
        o.tenant = scope.tenant;
    for (;;) {
        evs_stream_list *l = NULL;
        o.limit = limit && limit - printed < PAGE ? limit - printed : PAGE;
        o.after_tenant = scope.all_tenants ? after_tenant : NULL;
        o.after = after;
        if ((rc = evs_list_streams(&l, db, &o)) < 0) {
            status = cli_lib_err(rc, "streams");
            break;
        }
        for (size_t i = 0; i < l->count; i++) {
            const evs_stream_info *s = &l->streams[i];
            line.len = 0;
            cli_buf_puts(&line, "{\"tenant\":");
            cli_json_put_str(&line, s->tenant, strlen(s->tenant));
            cli_buf_puts(&line, ",\"stream\":");
            cli_json_put_str(&line, s->stream, strlen(s->stream));
            cli_buf_printf(&line, ",\"events\":%" PRId64 ",\"last_version\":%" PRId64 "}\n",
                           s->last_version + 1, s->last_version);
            if (fwrite(line.p, 1, line.len, stdout) != line.len)
                break;
        }
        printed += l->count;
        int more = l->more && l->count > 0 && (limit == 0 || printed < limit);
        if (more) {
            free(after_tenant);
            free(after);
            after_tenant = strdup(l->streams[l->count - 1].tenant);
            after = strdup(l->streams[l->count - 1].stream);
            if (!after_tenant || !after) {
                cli_err("streams: out of memory");
                status = CLI_EXIT_FAIL;
                more = 0;
            }
        }
        evs_stream_list_free(l);
        if (!more || ferror(stdout))
            break;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_err("streams: cannot write the output");
        status = CLI_EXIT_FAIL;
    }
    if (status == CLI_EXIT_OK && printed == 0 && !scope.have_tenant && !scope.all_tenants)
        cli_hint_tenants(db, "streams");
    free(after_tenant);
    free(after);
    cli_buf_free(&line);
    return cli_close(db, status);
}
