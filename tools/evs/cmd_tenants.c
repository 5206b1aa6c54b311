/*
 * cmd_tenants.c -- `evs tenants`: every tenant with its event count; and
 * the hint the reading commands print when the default tenant is empty
 * but others are not (cli_hint_tenants).
 */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs tenants\n"
    "\n"
    "Print every tenant of the store with its number of events, one JSON\n"
    "object per line in name order, e.g.\n"
    "  {\"tenant\":\"\",\"events\":12}\n"
    "  {\"tenant\":\"tenant-00\",\"events\":812}\n"
    "The default tenant is \"\". Events of system streams (checkpoints) are\n"
    "not counted: a count is what 'evs all --tenant NAME' prints, and a\n"
    "tenant whose only events are checkpoints shows 0. The counts come\n"
    "from the index (no event is read), at a cost linear in the events.\n"
    "\n"
    "Options:\n"
    CLI_HELP_SHARED
    CLI_HELP_EXIT;

static const cli_cmd cmd = {"tenants", help, cli_no_options};

/* Tenants named in the hint, at most; the rest are counted. */
#define HINT_TENANTS 8

/* The hint asks only which tenants have events (evs_list_tenants_capped
 * with a cap of 1: one index seek per tenant), not how many: counting
 * would cost a walk of every event, seconds on a large store, for a line
 * on stderr. `evs tenants` counts them. */
void cli_hint_tenants(evs_db *db, const char *what)
{
    evs_tenant_list *l = NULL;
    uint64_t head = 0;
    cli_buf b = {0};
    size_t shown = 0, others = 0;

    /* the default tenant holds events: nothing to explain */
    if (evs_head_position(&head, db, "") < 0 || head > 0)
        return;
    if (evs_list_tenants_capped(&l, db, 1) < 0)
        return; /* a hint, not the command's result: say nothing */
    for (size_t i = 0; i < l->count; i++) {
        if (l->tenants[i].tenant[0] == '\0' || l->tenants[i].events == 0)
            continue;
        if (shown == HINT_TENANTS) {
            others++;
            continue;
        }
        cli_buf_printf(&b, "%s%s", shown ? ", " : "", l->tenants[i].tenant);
        shown++;
    }
    if (shown > 0) {
        if (others)
            cli_buf_printf(&b, " and %zu more", others);
        cli_buf_putc(&b, '\0');
        cli_err("%s: the default tenant has no events; tenants with events: %s; "
                "use --tenant NAME or --all-tenants ('evs tenants' counts them)",
                what, b.p);
    }
    cli_buf_free(&b);
    evs_tenant_list_free(l);
}

int cmd_tenants(cli_ctx *cx, int argc, char **argv)
{
    int rc, status;
    evs_db *db = NULL;
    evs_tenant_list *l = NULL;
    cli_buf line = {0};

    cli_getopt_start();
    if ((status = cli_parse_opts(cx, NULL, &cmd, argc, argv)) >= 0)
        return status;
    if ((status = cli_no_args("tenants", argc, argv)) != 0 ||
        (status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    rc = evs_list_tenants(&l, db);
    if (rc < 0)
        return cli_close(db, cli_lib_err(rc, "tenants"));
    for (size_t i = 0; i < l->count; i++) {
        line.len = 0;
        cli_buf_puts(&line, "{\"tenant\":");
        cli_json_put_str(&line, l->tenants[i].tenant, strlen(l->tenants[i].tenant));
        cli_buf_printf(&line, ",\"events\":%" PRIu64 "}\n", l->tenants[i].events);
        if (fwrite(line.p, 1, line.len, stdout) != line.len)
            break;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_err("tenants: cannot write the output");
        status = CLI_EXIT_FAIL;
    }
    cli_buf_free(&line);
    evs_tenant_list_free(l);
    return cli_close(db, status);
}
