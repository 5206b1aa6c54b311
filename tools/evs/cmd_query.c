/*
 * cmd_query.c -- `evs query`: print the events that match a DCB query,
 * then the read's consistency marker (for `evs append --fail-if --after`).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: evs query [--type T]... [--tag K:V]... [--or ...] [options]\n"
    "       evs query --query JSON [options]\n"
    "\n"
    "Print the events that match a DCB query, one JSON object per line (as\n"
    "'evs read' prints them), oldest first; then the consistency marker on\n"
    "standard error as 'marker: N': the position of the newest event the\n"
    "read considered, for 'evs append --fail-if ... --after N'.\n"
    "\n"
    "The --type and --tag flags make one item: an event matches it when its\n"
    "type is one of the item's --type values (none: any type) and it carries\n"
    "every --tag. --or starts the next item; the events matching any item\n"
    "are printed. No --type, --tag or --query: every event. The tag\n"
    "'$stream:NAME' matches the events of stream NAME.\n"
    "\n"
    "Options:\n"
    "  --type T          an event type of the current item (repeatable)\n"
    "  --tag K:V         a tag the current item requires (repeatable)\n"
    "  --or              start the next item\n"
    "  --query JSON      the query as JSON instead of those flags, e.g.\n"
    "                    '{\"items\":[{\"types\":[\"A\",\"B\"],\"tags\":[\"k:v\"]}]}'\n"
    "                    (no \"items\", or [], is every event)\n"
    "  --after POS       only events after position POS (exclusive;\n"
    "                    default: from the first)\n"
    "  --backward        newest first\n"
    "  --before POS      with --backward: only events before position POS\n"
    "                    (exclusive; default: from the newest)\n"
    "  --limit N         at most N events (0 = all, the default)\n"
    "  --tenant NAME     tenant (default: the default tenant)\n"
    "  --all-tenants     every tenant's matching events, merged in position\n"
    "                    order, each line with its tenant; no marker (an\n"
    "                    append condition is a tenant's)\n"
    "  --marker-file F   write the marker to file F (the number and a\n"
    "                    newline) instead of standard error\n"
    "  --db URI          the store\n"
    "  -h, --help        this help\n"
    "\n"
    "When the default tenant has no events while other tenants do, standard\n"
    "error says which (standard output stays empty).\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error (a bad flag or number,\n"
    "malformed --query JSON, an empty or reserved type or tag).\n";

enum {
    OPT_TYPE = 0x100,
    OPT_TAG,
    OPT_OR,
    OPT_QUERY,
    OPT_AFTER,
    OPT_BEFORE,
    OPT_BACKWARD,
    OPT_LIMIT,
    OPT_TENANT,
    OPT_ALL_TENANTS,
    OPT_MARKER_FILE
};

static const struct option options[] = {
    {"type", required_argument, NULL, OPT_TYPE},
    {"tag", required_argument, NULL, OPT_TAG},
    {"or", no_argument, NULL, OPT_OR},
    {"query", required_argument, NULL, OPT_QUERY},
    {"after", required_argument, NULL, OPT_AFTER},
    {"before", required_argument, NULL, OPT_BEFORE},
    {"backward", no_argument, NULL, OPT_BACKWARD},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"all-tenants", no_argument, NULL, OPT_ALL_TENANTS},
    {"marker-file", required_argument, NULL, OPT_MARKER_FILE},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"query", help, options};

enum { BOUND_AFTER = 1, BOUND_BEFORE = 2 };

/* The marker of the finished read: to file, else to standard error. */
static int put_marker(const evs_iter *it, const char *file)
{
    uint64_t marker = 0;
    FILE *f;
    int rc = evs_iter_marker(&marker, it), werr;

    if (rc < 0)
        return cli_lib_err(rc, "query");
    if (file == NULL) {
        fprintf(stderr, "marker: %" PRIu64 "\n", marker);
        return CLI_EXIT_OK;
    }
    if ((f = fopen(file, "w")) == NULL) {
        cli_err("query: cannot open %s: %s", file, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    werr = fprintf(f, "%" PRIu64 "\n", marker) < 0;
    if (fclose(f) != 0 || werr) {
        cli_err("query: cannot write %s: %s", file, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/*
 * --all-tenants: the query in every tenant that has events (as listed
 * when it starts), merged by position: each tenant's read is in position
 * order, so the next line is the smallest (backward: largest) head of
 * the reads, as in a k-way merge. A tenant's events are a snapshot each.
 */
#define QUERY_MAX_TENANTS 256 /* reads open at once (each holds a snapshot) */

static int query_all_tenants(evs_db *db, const evs_query *q, uint64_t bound,
                             int backward, uint64_t limit)
{
    evs_tenant_list *tl = NULL;
    evs_iter **its = NULL;
    const evs_event **heads = NULL;
    cli_buf line = {0};
    uint64_t printed = 0;
    size_t n = 0, i;
    int rc, status = CLI_EXIT_OK;

    /* which tenants have events: one seek each, no count */
    if ((rc = evs_list_tenants_capped(&tl, db, 1)) < 0)
        return cli_lib_err(rc, "query");
    for (i = 0; i < tl->count; i++)
        n += tl->tenants[i].events > 0;
    if (n > QUERY_MAX_TENANTS) {
        cli_err("query: --all-tenants merges one read per tenant and the store "
                "has %zu tenants with events (at most %d at once); query them "
                "one --tenant at a time ('evs tenants' lists them)", n,
                QUERY_MAX_TENANTS);
        evs_tenant_list_free(tl);
        return CLI_EXIT_FAIL;
    }
    n = 0;
    its = cli_xmalloc((tl->count ? tl->count : 1) * sizeof(*its));
    heads = cli_xmalloc((tl->count ? tl->count : 1) * sizeof(*heads));
    for (i = 0; i < tl->count && status == CLI_EXIT_OK; i++) {
        if (tl->tenants[i].events == 0)
            continue;
        rc = evs_read_query(&its[n], db, tl->tenants[i].tenant, q, bound,
                            backward ? EVS_BACKWARD : EVS_FORWARD, limit);
        if (rc == 0 && (rc = evs_iter_next(&heads[n], its[n])) == EVS_ITEROVER) {
            heads[n] = NULL;
            rc = 0;
        }
        if (rc < 0)
            status = cli_lib_err(rc, "query");
        if (its[n] != NULL)
            n++;
    }
    while (status == CLI_EXIT_OK && (limit == 0 || printed < limit)) {
        size_t best = n;
        for (i = 0; i < n; i++)
            if (heads[i] != NULL &&
                (best == n || (backward ? heads[i]->position > heads[best]->position
                                        : heads[i]->position < heads[best]->position)))
                best = i;
        if (best == n)
            break;
        line.len = 0;
        cli_event_json(&line, heads[best], 1);
        if (fwrite(line.p, 1, line.len, stdout) != line.len)
            break;
        printed++;
        if ((rc = evs_iter_next(&heads[best], its[best])) == EVS_ITEROVER)
            heads[best] = NULL;
        else if (rc < 0)
            status = cli_lib_err(rc, "query");
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_err("query: cannot write the output");
        status = CLI_EXIT_FAIL;
    }
    for (i = 0; i < n; i++)
        evs_iter_free(its[i]);
    free(its);
    free((void *)heads);
    cli_buf_free(&line);
    evs_tenant_list_free(tl);
    return status;
}

int cmd_query(cli_ctx *cx, int argc, char **argv)
{
    cli_qflags flags = {0};
    cli_arena arena = {0};
    evs_query q;
    const char *json = NULL, *tenant = NULL, *marker_file = NULL;
    /* --after or --before: the one that fits the direction is the read's
     * position bound; the other is refused below. */
    uint64_t bound = 0, limit = 0;
    unsigned bounds = 0;
    int backward = 0, all_tenants = 0, c, rc, status;
    uint64_t count = 0;
    evs_db *db = NULL;
    evs_iter *it = NULL;
    char err[320];

    cli_getopt_start();
    while ((c = cli_next_opt(&status, cx, NULL, &cmd, argc, argv)) != -1) {
        switch (c) {
        case OPT_TYPE:
            cli_qflags_add(&flags, CLI_QTERM_TYPE, optarg);
            break;
        case OPT_TAG:
            cli_qflags_add(&flags, CLI_QTERM_TAG, optarg);
            break;
        case OPT_OR:
            cli_qflags_add(&flags, CLI_QTERM_OR, NULL);
            break;
        case OPT_QUERY:
            json = optarg;
            break;
        case OPT_AFTER:
        case OPT_BEFORE:
            if ((status = cli_parse_position(
                     &bound, "query", c == OPT_AFTER ? "--after" : "--before",
                     optarg)) != 0)
                goto out;
            bounds |= c == OPT_AFTER ? BOUND_AFTER : BOUND_BEFORE;
            break;
        case OPT_BACKWARD:
            backward = 1;
            break;
        case OPT_LIMIT:
            if (cli_parse_u64(optarg, &limit) < 0) {
                status = cli_usage("query", "--limit: '%s' is not a number "
                                   ">= 0", optarg);
                goto out;
            }
            break;
        case OPT_TENANT:
            tenant = optarg;
            break;
        case OPT_ALL_TENANTS:
            all_tenants = 1;
            break;
        case OPT_MARKER_FILE:
            marker_file = optarg;
            break;
        }
    }
    if (status >= 0)
        goto out;
    if ((status = cli_no_args("query", argc, argv)) != 0)
        goto out;
    if (all_tenants && (tenant != NULL || marker_file != NULL)) {
        status = cli_usage("query", tenant != NULL
                           ? "--tenant and --all-tenants exclude each other"
                           : "--marker-file: a query of --all-tenants has no "
                             "marker (an append condition is a tenant's)");
        goto out;
    }
    if (json != NULL && flags.n > 0) {
        status = cli_usage("query", "--query JSON and the --type, --tag and "
                           "--or flags exclude each other");
        goto out;
    }
    if (bounds & (backward ? BOUND_AFTER : BOUND_BEFORE)) {
        status = cli_usage("query", backward
                           ? "--after is for forward reads; a --backward "
                             "read takes --before POS"
                           : "--before is for --backward reads; a forward "
                             "read takes --after POS");
        goto out;
    }
    if (json != NULL
            ? cli_query_from_json(&q, &arena, json, strlen(json), err,
                                  sizeof err) < 0
            : cli_query_from_flags(&q, &arena, &flags, err, sizeof err) < 0) {
        status = cli_usage("query", "%s%s", json != NULL ? "--query: " : "",
                           err);
        goto out;
    }

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        goto out;
    if (all_tenants) {
        status = cli_close(db, query_all_tenants(db, &q, bound, backward,
                                                 limit));
        goto out;
    }
    rc = evs_read_query(&it, db, tenant, &q, bound,
                        backward ? EVS_BACKWARD : EVS_FORWARD, limit);
    if (rc < 0)
        status = cli_lib_err(rc, NULL);
    else
        status = cli_write_events(it, stdout,
                                  tenant != NULL && tenant[0] != '\0',
                                  "query", &count);
    if (status == CLI_EXIT_OK)
        status = put_marker(it, marker_file);
    if (status == CLI_EXIT_OK && count == 0 && tenant == NULL)
        cli_hint_tenants(db, "query");
    evs_iter_free(it);
    status = cli_close(db, status);
out:
    cli_qflags_free(&flags);
    cli_arena_reset(&arena);
    return status;
}
