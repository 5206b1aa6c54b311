/*
 * test_bench.c -- `evs bench --quick` on a fresh store (issue 6): exit
 * status 0, every scenario ran, at every level (and in every warm-up)
 * attempted = committed + rejected + conflicts + errors, and every figure
 * of the Markdown report's tables -- the targets table, the data load row,
 * the per-level tables and the scenario totals -- equals the JSON's,
 * formatted as the report formats it (tools/bench/report.h: ops/s and items/s
 * with one decimal, milliseconds with three).
 *
 * Bad input (exit statuses, refusals, a store held by another writer) is
 * tests/cli/bench.sh. The run is short (--events 20000, 0.2 s per level):
 * its figures are noise; only their consistency is checked.
 *
 * test_peers_run (issue 20): a shorter run of five shared scenarios and
 * tokens with the SQLite peer: every peer scenario's outcomes add up, the
 * side-by-side section is near the top of report.md (and in the summary
 * on stdout) with the JSON's figures, and report.json carries the peer's
 * scenarios, load and side-by-side rows. (The quick run above passes
 * --peers none, keeping its time.)
 *
 * test_transport_run (issue 16): a tiny run with --transport grpc (the
 * quick run leaves the transport out, and says so): `evs serve` started
 * and stopped by the bench (exit status 0), every gRPC scenario's
 * outcomes add up at every level, its checks held, its goals are judged,
 * and the report's transport tables carry the JSON's figures.
 *
 * `test_bench pg` (ctest: test_bench_peers_pg, on the PostgreSQL test
 * cluster EVS_TEST_PG, issue 20) runs the PostgreSQL peers instead:
 * test_pg_peers_run, a short run with --pg-uri of raw PostgreSQL
 * (pgbench) and Message DB: every peer scenario's outcomes add up with no
 * error, their checks held, report.md has each side-by-side table with
 * the JSON's figures, and their databases are dropped after;
 * test_pg_throwaway, --pg-throwaway: the bench's own cluster ran the
 * postgres peer and its directory is gone after, no server left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EVS_CLI_PATH
#error "EVS_CLI_PATH: the evs under test (tests/CMakeLists.txt)"
#endif

static char g_dir[PATH_MAX];

/* ------------------------------------------------------------------ */
/* Markdown tables                                                     */
/* ------------------------------------------------------------------ */

#define MAX_CELLS 32

typedef struct row {
    char *cell[MAX_CELLS];
    int n;
} row;

/* Splits a table line "| a | b |" into trimmed cells (in place; "\|" is
 * a '|' inside a cell). */
static int split_row(char *line, row *r)
{
    r->n = 0;
    if (line[0] != '|')
        return -1;
    char *p = line + 1, *out = line + 1, *start = out;
    for (; *p && *p != '\n'; p++) {
        if (p[0] == '\\' && p[1] == '|') {
            *out++ = '|';
            p++;
        } else if (*p == '|') {
            *out++ = 0;
            while (*start == ' ')
                start++;
            for (char *e = start + strlen(start); e > start && e[-1] == ' ';)
                *--e = 0;
            if (r->n < MAX_CELLS)
                r->cell[r->n++] = start;
            start = out;
        } else {
            *out++ = *p;
        }
    }
    return 0;
}

typedef struct md {
    char **lines;
    int n;
} md;

static void md_load(md *m, const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    m->lines = NULL;
    m->n = 0;
    while (getline(&line, &cap, f) >= 0) {
        m->lines = realloc(m->lines, sizeof *m->lines * (size_t)(m->n + 1));
        assert_non_null(m->lines);
        m->lines[m->n++] = strdup(line);
    }
    free(line);
    fclose(f);
}

static void md_free(md *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->lines[i]);
    free(m->lines);
}

/* The index of the first line at or after from that starts with prefix,
 * or -1. */
static int md_find(const md *m, int from, const char *prefix)
{
    for (int i = from; i < m->n; i++)
        if (strncmp(m->lines[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Comparisons                                                         */
/* ------------------------------------------------------------------ */

static void mismatch(const char *what, const char *got, const char *want)
{
    print_error("%s: markdown '%s', json '%s'\n", what, got, want);
    fail();
}

/* A cell holding a count equals the JSON integer. */
static void same_int(const char *what, const char *cell, json_t *v)
{
    char want[32];
    assert_true(json_is_integer(v));
    snprintf(want, sizeof want, "%lld", (long long)json_integer_value(v));
    if (strcmp(cell, want) != 0)
        mismatch(what, cell, want);
}

/* A cell (or its first word) holding a number printed with fmt equals
 * the JSON number printed with fmt. */
static void same_real(const char *what, const char *cell, json_t *v,
                      const char *fmt)
{
    char want[64], got[64];
    assert_true(json_is_number(v));
    snprintf(want, sizeof want, fmt, json_number_value(v));
    snprintf(got, sizeof got, "%.*s", (int)strcspn(cell, " "), cell);
    if (strcmp(got, want) != 0)
        mismatch(what, got, want);
}

static json_t *get(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        print_error("JSON member '%s' missing\n", key);
        fail();
    }
    return v;
}

static uint64_t u(json_t *o, const char *key)
{
    json_t *v = get(o, key);
    assert_true(json_is_integer(v));
    return (uint64_t)json_integer_value(v);
}

/* ------------------------------------------------------------------ */
/* The checks                                                          */
/* ------------------------------------------------------------------ */

static void check_accounting(json_t *root)
{
    json_t *scs = get(root, "scenarios"), *sc;
    size_t i;
    assert_true(json_array_size(scs) > 0);
    json_array_foreach(scs, i, sc) {
        const char *name = json_string_value(get(sc, "name"));
        json_t *levels = get(sc, "levels"), *lv;
        size_t k;
        if (strcmp(json_string_value(get(sc, "outcome")), "ok") != 0) {
            print_error("scenario %s: outcome %s\n", name,
                        json_string_value(get(sc, "outcome")));
            fail();
        }
        assert_true(json_array_size(levels) > 0);
        json_array_foreach(levels, k, lv) {
            uint64_t a = u(lv, "attempted");
            uint64_t sum = u(lv, "committed") + u(lv, "rejected") +
                           u(lv, "conflicts") + u(lv, "errors");
            if (a != sum) {
                print_error("%s, %lld threads: attempted %llu, outcomes "
                            "sum to %llu\n",
                            name, (long long)u(lv, "threads"),
                            (unsigned long long)a, (unsigned long long)sum);
                fail();
            }
            assert_true(a > 0);
            assert_true(json_is_true(get(lv, "accounting_ok")));
            json_t *w = get(lv, "warmup_excluded");
            assert_int_equal(u(w, "attempted"),
                             u(w, "committed") + u(w, "rejected") +
                                 u(w, "conflicts") + u(w, "errors"));
            json_t *lat = get(lv, "latency_ms");
            double p50 = json_number_value(get(lat, "p50")),
                   p90 = json_number_value(get(lat, "p90")),
                   p95 = json_number_value(get(lat, "p95")),
                   p99 = json_number_value(get(lat, "p99")),
                   max = json_number_value(get(lat, "max"));
            assert_true(p50 <= p90 && p90 <= p95 && p95 <= p99 && p99 <= max);
            assert_int_equal(u(lat, "samples"), a);
            assert_true(json_number_value(get(lv, "window_s")) > 0);
        }
    }
}

static void check_targets(json_t *root, md *m)
{
    json_t *targets = get(root, "targets");
    int at = md_find(m, 0, "| target | source |");
    assert_true(at >= 0);
    at += 2; /* the header and the |---| line */
    for (size_t i = 0; i < json_array_size(targets); i++, at++) {
        json_t *t = json_array_get(targets, i);
        row r;
        char buf[128];
        assert_true(at < m->n);
        assert_int_equal(split_row(m->lines[at], &r), 0);
        assert_int_equal(r.n, 8);
        assert_string_equal(r.cell[0], json_string_value(get(t, "name")));
        assert_string_equal(r.cell[1], json_string_value(get(t, "source")));
        snprintf(buf, sizeof buf, "`%s`",
                 json_string_value(get(t, "scenario")));
        assert_string_equal(r.cell[2], buf);
        /* "≥ 5000 ops/s": the number after the sign */
        const char *num = strchr(r.cell[4], ' ');
        assert_non_null(num);
        double value = strtod(num + 1, NULL);
        double want = json_number_value(get(t, "value"));
        if (fabs(value - want) > 1e-9 * fabs(want))
            mismatch("target value", r.cell[4], "(json value)");
        assert_string_equal(strncmp(r.cell[4], "≥", strlen("≥")) == 0 ? ">="
                                                                       : "<=",
                            json_string_value(get(t, "comparison")));
        json_t *measured = get(t, "measured");
        const char *metric = json_string_value(get(t, "metric"));
        int rate = strstr(metric, "_per_s") != NULL;
        if (json_is_null(measured))
            assert_string_equal(r.cell[5], "-");
        else
            same_real("measured", r.cell[5], measured, rate ? "%.1f" : "%.3f");
        snprintf(buf, sizeof buf, "**%s**",
                 json_string_value(get(t, "verdict")));
        assert_string_equal(r.cell[6], buf);
        json_t *jt = get(t, "judged_threads");
        if (!json_is_null(jt)) {
            snprintf(buf, sizeof buf, "%lld thread",
                     (long long)json_integer_value(jt));
            assert_non_null(strstr(r.cell[3], buf));
        }
    }
    /* and no row more */
    assert_true(at >= m->n || m->lines[at][0] != '|');
}

static void check_generator(json_t *root, md *m)
{
    json_t *g = get(root, "generator"), *st = get(g, "stats");
    int at = md_find(m, 0, "| events | streams | snapshots |");
    row r;
    assert_true(at >= 0);
    assert_int_equal(split_row(m->lines[at + 2], &r), 0);
    assert_int_equal(r.n, 8);
    same_int("generated events", r.cell[0], get(st, "events"));
    same_int("streams", r.cell[1], get(st, "streams"));
    same_int("snapshots", r.cell[2], get(st, "snapshots"));
    same_int("appends", r.cell[3], get(st, "appends"));
    same_int("tenants", r.cell[4], get(st, "tenants"));
    same_real("load seconds", r.cell[6], get(g, "seconds"), "%.3f");
    same_real("load events/s", r.cell[7], get(g, "events_per_s"), "%.1f");
}

static json_t *scenario_named(json_t *root, const char *name)
{
    json_t *scs = get(root, "scenarios"), *sc;
    size_t i;
    json_array_foreach(scs, i, sc)
        if (strcmp(json_string_value(get(sc, "name")), name) == 0)
            return sc;
    print_error("scenario %s of the markdown is not in the JSON\n", name);
    fail();
    return NULL;
}

static void check_levels(json_t *root, md *m)
{
    static const char *const lat[] = {"p50", "p90", "p95", "p99", "max"};
    size_t seen = 0;
    int at = md_find(m, 0, "## Scenarios");
    assert_true(at >= 0);
    while ((at = md_find(m, at + 1, "### `")) >= 0) {
        char name[128];
        const char *p = m->lines[at] + 5;
        snprintf(name, sizeof name, "%.*s", (int)strcspn(p, "`"), p);
        json_t *sc = scenario_named(root, name), *levels = get(sc, "levels");
        int next = md_find(m, at + 1, "### `");
        int t = md_find(m, at + 1, "| threads | attempted |");
        assert_true(t >= 0 && (next < 0 || t < next));
        seen++;
        t += 2;
        for (size_t k = 0; k < json_array_size(levels); k++, t++) {
            json_t *lv = json_array_get(levels, k), *l = get(lv, "latency_ms");
            row r;
            assert_int_equal(split_row(m->lines[t], &r), 0);
            assert_int_equal(r.n, 13);
            same_int("threads", r.cell[0], get(lv, "threads"));
            same_int("attempted", r.cell[1], get(lv, "attempted"));
            same_int("committed", r.cell[2], get(lv, "committed"));
            same_int("rejected", r.cell[3], get(lv, "rejected"));
            same_int("conflicts", r.cell[4], get(lv, "conflicts"));
            same_int("errors", r.cell[5], get(lv, "errors"));
            same_real("ops/s", r.cell[6], get(lv, "ops_per_s"), "%.1f");
            if (json_is_null(get(lv, "items_per_s")))
                assert_string_equal(r.cell[7], "-");
            else
                same_real("items/s", r.cell[7], get(lv, "items_per_s"),
                          "%.1f");
            for (int q = 0; q < 5; q++)
                same_real(lat[q], r.cell[8 + q], get(l, lat[q]), "%.3f");
        }
        assert_true(m->lines[t][0] != '|');
    }
    assert_int_equal(seen, json_array_size(get(root, "scenarios")));
}

/* Each verdict follows from the JSON's figures: "not run" exactly when
 * nothing was measured; otherwise "met" only when the measured value is on
 * the right side of the target, the scenario's outcomes added up and its
 * check held, and (for a throughput) the judged level had no error or
 * conflict, (for a latency) no error. */
static json_t *level_of(json_t *sc, json_int_t threads)
{
    json_t *levels = get(sc, "levels"), *lv;
    size_t k;
    json_array_foreach(levels, k, lv)
        if (json_integer_value(get(lv, "threads")) == threads)
            return lv;
    return NULL;
}

static void check_verdicts(json_t *root)
{
    json_t *targets = get(root, "targets"), *t;
    size_t i;
    json_array_foreach(targets, i, t) {
        const char *verdict = json_string_value(get(t, "verdict"));
        json_t *measured = get(t, "measured");
        if (json_is_null(measured)) {
            assert_string_equal(verdict, "not run");
            continue;
        }
        assert_string_not_equal(verdict, "not run");
        json_t *sc = scenario_named(root, json_string_value(get(t, "scenario")));
        json_t *lv = level_of(sc, json_integer_value(get(t, "judged_threads")));
        assert_non_null(lv);
        json_int_t want_threads = json_integer_value(get(t, "threads"));
        if (want_threads > 0)
            assert_int_equal(json_integer_value(get(lv, "threads")),
                             want_threads);
        double v = json_number_value(measured);
        double target = json_number_value(get(t, "value"));
        int at_least = strcmp(json_string_value(get(t, "comparison")),
                              ">=") == 0;
        int rate = strstr(json_string_value(get(t, "metric")), "_per_s") !=
                   NULL;
        int ok = at_least ? v >= target : v <= target;
        if (rate)
            ok &= u(lv, "errors") == 0 && u(lv, "conflicts") == 0 &&
                  u(get(lv, "warmup_excluded"), "errors") == 0;
        else
            ok &= u(lv, "errors") == 0 &&
                  u(get(lv, "latency_ms"), "samples") > 0;
        ok &= json_is_true(get(sc, "accounting_ok")) &&
              strcmp(json_string_value(get(sc, "check")), "failed") != 0;
        if (strcmp(verdict, ok ? "met" : "not met") != 0) {
            print_error("target %s of %s: verdict %s, the figures say %s\n",
                        json_string_value(get(t, "name")),
                        json_string_value(get(t, "scenario")), verdict,
                        ok ? "met" : "not met");
            fail();
        }
    }
}

/* The summary's per-scenario totals are the sums of the levels. */
static void check_totals(json_t *root, md *m)
{
    static const char *const keys[] = {"attempted", "committed", "rejected",
                                       "conflicts", "errors"};
    int at = md_find(m, 0, "| scenario | outcome |");
    assert_true(at >= 0);
    at += 2;
    for (; at < m->n && m->lines[at][0] == '|'; at++) {
        row r;
        char name[128];
        assert_int_equal(split_row(m->lines[at], &r), 0);
        assert_int_equal(r.n, 8);
        snprintf(name, sizeof name, "%.*s", (int)strlen(r.cell[0]) - 2,
                 r.cell[0] + 1);
        json_t *sc = scenario_named(root, name), *levels = get(sc, "levels");
        assert_string_equal(r.cell[1],
                            json_string_value(get(sc, "outcome")));
        for (int q = 0; q < 5; q++) {
            uint64_t sum = 0;
            for (size_t k = 0; k < json_array_size(levels); k++)
                sum += u(json_array_get(levels, k), keys[q]);
            char want[32];
            snprintf(want, sizeof want, "%llu", (unsigned long long)sum);
            if (strcmp(r.cell[3 + q], want) != 0)
                mismatch(keys[q], r.cell[3 + q], want);
        }
    }
}

/* Run `evs bench ARGS --out g_dir/OUT --dir g_dir` (stdout to
 * g_dir/PREFIXstdout, stderr to g_dir/PREFIXstderr), assert it exits 0
 * (printing the end of its stderr otherwise) and that its report.json
 * says so; returns that report (the caller's: json_decref). */
static json_t *run_bench(const char *args, const char *out, const char *prefix)
{
    char cmd[PATH_MAX * 6 + 512], path[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "'%s' bench %s --out '%s/%s' --dir '%s' >'%s/%sstdout' "
             "2>'%s/%sstderr'", EVS_CLI_PATH, args, g_dir, out, g_dir, g_dir, prefix,
             g_dir, prefix);
    int st = system(cmd);
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (status != 0) {
        snprintf(cmd, sizeof cmd, "tail -n 30 '%s/%sstderr' >&2", g_dir, prefix);
        if (system(cmd) != 0)
            print_error("(no stderr)\n");
    }
    assert_int_equal(status, 0);

    json_error_t jerr;
    snprintf(path, sizeof path, "%s/%s/report.json", g_dir, out);
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        print_error("%s: %s (line %d)\n", path, jerr.text, jerr.line);
    assert_non_null(root);
    assert_int_equal(json_integer_value(get(root, "exit_status")), 0);
    return root;
}

static void test_quick_run(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 64], path[PATH_MAX + 32];
    json_t *root = run_bench("--quick --events 20000 --seconds 0.2 --warmup 0.05 "
                             "--peers none", "out", "");
    check_accounting(root);
    check_verdicts(root);

    md m;
    snprintf(path, sizeof path, "%s/out/report.md", g_dir);
    md_load(&m, path);
    check_targets(root, &m);
    check_generator(root, &m);
    check_levels(root, &m);
    check_totals(root, &m);
    md_free(&m);

    /* stdout: the summary, the same targets table */
    snprintf(path, sizeof path, "%s/stdout", g_dir);
    md_load(&m, path);
    check_targets(root, &m);
    md_free(&m);
    /* the quick run leaves the transport out, and says so */
    json_t *tp = get(root, "transport");
    assert_true(json_is_false(get(tp, "requested")));
    assert_true(json_is_false(get(tp, "ran")));
    snprintf(path, sizeof path, "%s/out/report.md", g_dir);
    md_load(&m, path);
    assert_true(md_find(&m, 0, "| transport | skipped in the quick run") >= 0);
    md_free(&m);
    json_decref(root);

    /* the fresh store's temporary directory is gone */
    snprintf(cmd, sizeof cmd, "ls -d '%s'/evs-bench-* >/dev/null 2>&1",
             g_dir);
    assert_int_not_equal(system(cmd), 0);
}

/* ------------------------------------------------------------------ */
/* The transport (issue 16)                                            */
/* ------------------------------------------------------------------ */

/* report.md's level table of the gRPC scenario name, its rows the JSON's
 * levels. */
static void check_tp_levels_md(md *m, json_t *sc)
{
    char head[160];
    snprintf(head, sizeof head, "### gRPC: `%s`",
             json_string_value(get(sc, "name")));
    int at = md_find(m, 0, head);
    assert_true(at >= 0);
    int t = md_find(m, at, "| connections | client threads | attempted |");
    assert_true(t >= 0);
    t += 2;
    json_t *levels = get(sc, "levels"), *lv;
    size_t k;
    json_array_foreach(levels, k, lv) {
        row r;
        json_t *l = get(lv, "latency_ms");
        assert_true(t < m->n);
        assert_int_equal(split_row(m->lines[t++], &r), 0);
        assert_int_equal(r.n, 17);
        same_int("connections", r.cell[0], get(lv, "connections"));
        same_int("attempted", r.cell[2], get(lv, "attempted"));
        same_int("committed", r.cell[3], get(lv, "committed"));
        same_int("conflicts", r.cell[5], get(lv, "conflicts"));
        same_int("errors", r.cell[6], get(lv, "errors"));
        same_real("ops/s", r.cell[7], get(lv, "ops_per_s"), "%.1f");
        same_real("items/s", r.cell[8], get(lv, "items_per_s"), "%.1f");
        same_real("p50", r.cell[9], get(l, "p50"), "%.3f");
        same_real("p99", r.cell[12], get(l, "p99"), "%.3f");
    }
    assert_true(t >= m->n || m->lines[t][0] != '|');
}

static void test_transport_run(void **state)
{
    (void)state;
    static const char *const names[] = {"grpc-head", "grpc-append-1",
                                        "grpc-dcb", "grpc-catchup",
                                        "grpc-append-100", "kurrent-append-1",
                                        "kurrent-append-100"};
    char path[PATH_MAX + 32];
    json_t *root = run_bench("--quick --events 2000 --seconds 0.2 --warmup 0.05 "
                             "--scenarios append-1 --peers none --transport "
                             "grpc --no-plots",
                             "transport", "t");
    check_accounting(root);
    json_t *tp = get(root, "transport");
    assert_true(json_is_true(get(tp, "ran")));
    assert_true(json_is_false(get(tp, "failed")));
    assert_int_equal(json_integer_value(get(get(tp, "server"), "exit_status")),
                     0);
    json_t *scs = get(tp, "scenarios"), *sc;
    size_t i;
    assert_int_equal(json_array_size(scs), 7);
    json_array_foreach(scs, i, sc) {
        assert_string_equal(json_string_value(get(sc, "name")), names[i]);
        assert_true(json_is_true(get(sc, "ran")));
        assert_true(json_is_false(get(sc, "failed")));
        if (i == 1 || i == 2 || i >= 4) /* the writes are read back */
            assert_string_equal(json_string_value(get(sc, "check")), "held");
        json_t *levels = get(sc, "levels"), *lv;
        size_t k;
        assert_true(json_array_size(levels) > 0);
        json_array_foreach(levels, k, lv) {
            uint64_t a = u(lv, "attempted");
            assert_true(a > 0);
            assert_int_equal(a, u(lv, "committed") + u(lv, "rejected") +
                                    u(lv, "conflicts") + u(lv, "errors"));
            assert_int_equal(u(lv, "errors"), 0);
            assert_true(u(lv, "committed") > 0);
            json_t *w = get(lv, "warmup_excluded");
            assert_int_equal(u(w, "attempted"),
                             u(w, "committed") + u(w, "rejected") +
                                 u(w, "conflicts") + u(w, "errors"));
            json_t *lat = get(lv, "latency_ms");
            assert_int_equal(u(lat, "samples"), a);
            assert_true(json_number_value(get(lat, "p50")) > 0);
            assert_true(json_number_value(get(lat, "p50")) <=
                        json_number_value(get(lat, "p99")));
            assert_true(json_is_true(get(lv, "accounting_ok")));
        }
    }
    /* catch-up: every pass received every loaded event */
    json_t *cu = json_array_get(scs, 3);
    json_t *cl = json_array_get(get(cu, "levels"), 0);
    assert_int_equal(u(cl, "items"),
                     u(cl, "committed") * u(get(cu, "load"), "events"));
    /* the in-process append-1 of the same run, beside */
    json_t *ip = get(json_array_get(get(json_array_get(scs, 1), "levels"), 0),
                     "in_process");
    assert_string_equal(json_string_value(get(ip, "scenario")), "append-1");
    json_t *idle = get(tp, "idle");
    assert_int_equal(u(idle, "heads_ok"), u(idle, "connections"));
    assert_true(u(idle, "server_sockets") >= u(idle, "connections"));
    assert_true(u(idle, "rss_kb") > 0);
    json_t *goals = get(tp, "goals"), *g;
    assert_int_equal(json_array_size(goals), 4);
    json_array_foreach(goals, i, g) {
        const char *v = json_string_value(get(g, "verdict"));
        assert_true(strcmp(v, "met") == 0 || strcmp(v, "not met") == 0 ||
                    strcmp(v, "not run") == 0);
        if (strcmp(v, "not run") != 0) /* judged on a figure */
            assert_true(json_is_number(get(g, "measured")));
    }
    /* 256 connections and 1,000 idle ones are not in a quick pass */
    assert_string_equal(
        json_string_value(get(json_array_get(goals, 0), "verdict")), "not run");
    assert_string_equal(
        json_string_value(get(json_array_get(goals, 3), "verdict")), "not run");
    /* nor 200,000 events to catch up on; the p50 at 1 connection is
     * judged on the append-1 level's figure */
    assert_string_equal(
        json_string_value(get(json_array_get(goals, 2), "verdict")), "not run");
    json_t *a1 = json_array_get(get(json_array_get(scs, 1), "levels"), 0);
    assert_true(json_number_value(get(json_array_get(goals, 1), "measured")) ==
                json_number_value(get(get(a1, "latency_ms"), "p50")));

    md m;
    snprintf(path, sizeof path, "%s/transport/report.md", g_dir);
    md_load(&m, path);
    assert_true(md_find(&m, 0, "## Over the network: gRPC") >= 0);
    assert_true(md_find(&m, 0, "| transport | gRPC (C core ") >= 0);
    json_array_foreach(scs, i, sc)
        check_tp_levels_md(&m, sc);
    check_levels(root, &m); /* the gRPC sections are not evstore's */
    md_free(&m);
    snprintf(path, sizeof path, "%s/tstdout", g_dir);
    md_load(&m, path);
    assert_true(md_find(&m, 0, "| goal (issue 16) | target |") >= 0);
    md_free(&m);
    json_decref(root);
}

/* ------------------------------------------------------------------ */
/* The SQLite peer (issue 20)                                          */
/* ------------------------------------------------------------------ */

/* Every peer scenario ran, at every level (and warm-up) its outcomes add
 * up, its latency percentiles are ordered and count every operation, and
 * its busy retries are stated; the side-by-side rows are one per peer
 * level, with the peer's figures equal to its level's and evstore's equal
 * to evstore's level of the same threads, the ratios following from
 * them. */
static void check_peer(json_t *root, const char *const *names, int nnames)
{
    json_t *peers = get(root, "peers"), *p = NULL, *sc;
    size_t i;
    json_array_foreach(peers, i, sc)
        if (strcmp(json_string_value(get(sc, "name")), "sqlite") == 0)
            p = sc;
    assert_non_null(p);
    assert_true(json_is_true(get(p, "ran")));
    assert_true(json_is_false(get(p, "failed")));
    json_t *load = get(p, "load");
    assert_int_equal(u(load, "events"),
                     u(get(get(root, "generator"), "stats"), "events"));
    json_t *scs = get(p, "scenarios");
    assert_int_equal(json_array_size(scs), (size_t)nnames);
    size_t rows = 0;
    json_array_foreach(scs, i, sc) {
        const char *name = json_string_value(get(sc, "name"));
        json_t *levels = get(sc, "levels"), *lv;
        size_t k;
        assert_string_equal(name, names[i]);
        assert_string_equal(json_string_value(get(sc, "outcome")), "ok");
        assert_true(json_is_true(get(sc, "accounting_ok")));
        assert_true(json_array_size(levels) > 0);
        json_array_foreach(levels, k, lv) {
            uint64_t a = u(lv, "attempted");
            assert_true(a > 0);
            assert_int_equal(a, u(lv, "committed") + u(lv, "rejected") +
                                    u(lv, "conflicts") + u(lv, "errors"));
            assert_int_equal(u(lv, "errors"), 0);
            json_t *w = get(lv, "warmup_excluded");
            assert_int_equal(u(w, "attempted"),
                             u(w, "committed") + u(w, "rejected") +
                                 u(w, "conflicts") + u(w, "errors"));
            json_t *lat = get(lv, "latency_ms");
            assert_int_equal(u(lat, "samples"), a);
            assert_true(json_number_value(get(lat, "p50")) <=
                        json_number_value(get(lat, "p99")));
            assert_true(json_is_integer(get(lv, "busy_retries")));
            rows++;
        }
    }
    json_t *sbs = get(p, "side_by_side"), *jr;
    assert_int_equal(json_array_size(sbs), rows);
    json_array_foreach(sbs, i, jr) {
        const char *name = json_string_value(get(jr, "scenario"));
        json_int_t threads = json_integer_value(get(jr, "threads"));
        json_t *ops = get(jr, "ops_per_s"), *psc = NULL, *esc;
        size_t k;
        json_array_foreach(scs, k, sc)
            if (strcmp(json_string_value(get(sc, "name")), name) == 0)
                psc = sc;
        assert_non_null(psc);
        esc = scenario_named(root, name);
        json_t *pl = level_of(psc, threads), *el = level_of(esc, threads);
        assert_non_null(pl);
        assert_non_null(el);
        double e = json_number_value(get(ops, "evstore")),
               q = json_number_value(get(ops, "peer"));
        assert_true(e == json_number_value(get(el, "ops_per_s")));
        assert_true(q == json_number_value(get(pl, "ops_per_s")));
        assert_true(e > 0 && q > 0);
        assert_true(fabs(json_number_value(get(ops, "ratio")) - e / q) <=
                    1e-9 * (e / q));
    }
}

/* The Markdown's side-by-side section: near the top (before the
 * environment), a row per JSON row, its ops/s cells the JSON's. */
static void check_side_by_side_md(json_t *root, md *m)
{
    int at = md_find(m, 0, "## Side by side");
    int env = md_find(m, 0, "## Environment");
    assert_true(at >= 0);
    assert_true(env < 0 || at < env);
    int t = md_find(m, at, "| scenario | threads | evstore ops/s |");
    assert_true(t >= 0);
    t += 2;
    json_t *p = json_array_get(get(root, "peers"), 0);
    json_t *sbs = get(p, "side_by_side"), *jr;
    size_t i;
    json_array_foreach(sbs, i, jr) {
        row r;
        char want[128];
        assert_true(t < m->n);
        assert_int_equal(split_row(m->lines[t++], &r), 0);
        assert_int_equal(r.n, 12);
        snprintf(want, sizeof want, "`%s`",
                 json_string_value(get(jr, "scenario")));
        assert_string_equal(r.cell[0], want);
        same_int("threads", r.cell[1], get(jr, "threads"));
        same_real("evstore ops/s", r.cell[2],
                  get(get(jr, "ops_per_s"), "evstore"), "%.1f");
        same_real("peer ops/s", r.cell[3], get(get(jr, "ops_per_s"), "peer"),
                  "%.1f");
        same_real("ratio", r.cell[4], get(get(jr, "ops_per_s"), "ratio"),
                  "%.2f");
    }
    assert_true(t >= m->n || m->lines[t][0] != '|');
}

static void test_peers_run(void **state)
{
    (void)state;
    static const char *const names[] = {"append-1", "batch", "dcb-query",
                                        "dcb-workflow", "stream-batches"};
    char cmd[PATH_MAX + 64], path[PATH_MAX + 32];
    json_t *root = run_bench("--quick --events 2000 --seconds 0.2 --warmup 0.05 "
                             "--scenarios append-1,batch,dcb-query,dcb-workflow,"
                             "stream-batches,tokens --peers sqlite --no-plots",
                             "peers", "p");
    check_accounting(root);
    /* tokens has no SQLite counterpart: the peer runs the other five */
    check_peer(root, names, 5);

    md m;
    snprintf(path, sizeof path, "%s/peers/report.md", g_dir);
    md_load(&m, path);
    check_side_by_side_md(root, &m);
    check_levels(root, &m); /* the peer's sections are not evstore's */
    assert_true(md_find(&m, 0, "| peer sqlite | ran (SQLite ") >= 0);
    md_free(&m);
    /* the summary on stdout has it too */
    snprintf(path, sizeof path, "%s/pstdout", g_dir);
    md_load(&m, path);
    check_side_by_side_md(root, &m);
    md_free(&m);
    json_decref(root);

    /* the SQLite database went with the fresh store's directory */
    snprintf(cmd, sizeof cmd, "ls -d '%s'/evs-bench-* >/dev/null 2>&1",
             g_dir);
    assert_int_not_equal(system(cmd), 0);
}

/* ------------------------------------------------------------------ */
/* The PostgreSQL peers (issue 20): `test_bench pg`, as the ctest test  */
/* test_bench_peers_pg on the PostgreSQL test cluster (EVS_TEST_PG)     */
/* ------------------------------------------------------------------ */

/* The peer named name in report.json: it ran without failing, each of
 * its scenarios (names, in order) is ok with attempted = committed +
 * rejected + conflicts + errors > 0 and no error at every level (warm-up
 * too), its check (when it has one) held, and it has one side-by-side
 * row per level. Returns the peer. */
static json_t *check_pg_peer(json_t *root, const char *name,
                             const char *const *names, int nnames)
{
    json_t *peers = get(root, "peers"), *p = NULL, *sc;
    size_t i, rows = 0;
    json_array_foreach(peers, i, sc)
        if (strcmp(json_string_value(get(sc, "name")), name) == 0)
            p = sc;
    assert_non_null(p);
    if (!json_is_true(get(p, "ran")) || json_is_true(get(p, "failed")))
        print_error("peer %s: %s\n", name,
                    json_string_value(get(p, "note")) ?: "(no note)");
    assert_true(json_is_true(get(p, "ran")));
    assert_true(json_is_false(get(p, "failed")));
    assert_non_null(json_string_value(get(p, "server")));
    assert_non_null(json_string_value(get(p, "compared_with")));
    json_t *scs = get(p, "scenarios");
    assert_int_equal(json_array_size(scs), (size_t)nnames);
    json_array_foreach(scs, i, sc) {
        json_t *levels = get(sc, "levels"), *lv;
        size_t k;
        assert_string_equal(json_string_value(get(sc, "name")), names[i]);
        assert_string_equal(json_string_value(get(sc, "outcome")), "ok");
        assert_true(json_is_true(get(sc, "accounting_ok")));
        assert_true(json_array_size(levels) > 0);
        json_array_foreach(levels, k, lv) {
            uint64_t a = u(lv, "attempted");
            assert_true(a > 0);
            assert_int_equal(a, u(lv, "committed") + u(lv, "rejected") +
                                    u(lv, "conflicts") + u(lv, "errors"));
            assert_int_equal(u(lv, "errors"), 0);
            assert_true(u(lv, "committed") > 0);
            json_t *w = get(lv, "warmup_excluded");
            assert_int_equal(u(w, "attempted"),
                             u(w, "committed") + u(w, "rejected") +
                                 u(w, "conflicts") + u(w, "errors"));
            assert_int_equal(u(w, "errors"), 0);
            rows++;
        }
        json_t *chk = json_object_get(sc, "check");
        if (chk && json_is_string(chk))
            assert_string_not_equal(json_string_value(chk), "failed");
    }
    assert_int_equal(json_array_size(get(p, "side_by_side")), rows);
    return p;
}

/* report.md's side-by-side table of the peer titled title: a row per
 * JSON row, its ops/s cells the JSON's. */
static void check_pg_side_by_side(json_t *p, md *m, const char *title)
{
    char head[128];
    int at = md_find(m, 0, "## Side by side");
    assert_true(at >= 0);
    snprintf(head, sizeof head, "### %s ", title);
    int h = md_find(m, at, head);
    assert_true(h >= 0);
    snprintf(head, sizeof head, "| scenario | threads | evstore ops/s | %s "
             "ops/s |", title);
    int t = md_find(m, h, head);
    assert_true(t >= 0);
    t += 2;
    json_t *sbs = get(p, "side_by_side"), *jr;
    size_t i;
    json_array_foreach(sbs, i, jr) {
        row r;
        char want[128];
        assert_true(t < m->n);
        assert_int_equal(split_row(m->lines[t++], &r), 0);
        assert_int_equal(r.n, 12);
        snprintf(want, sizeof want, "`%s`",
                 json_string_value(get(jr, "scenario")));
        assert_string_equal(r.cell[0], want);
        same_int("threads", r.cell[1], get(jr, "threads"));
        same_real("peer ops/s", r.cell[3], get(get(jr, "ops_per_s"), "peer"),
                  "%.1f");
    }
    assert_true(t >= m->n || m->lines[t][0] != '|');
}

/* Both PostgreSQL peers on the test cluster (--pg-uri): raw PostgreSQL
 * (pgbench) and Message DB; their databases are dropped after. */
static void test_pg_peers_run(void **state)
{
    (void)state;
    static const char *const raw[] = {"append-1", "batch"};
    static const char *const mdb[] = {"append-1", "batch", "aggregate",
                                      "stream-batches"};
    const char *uri = getenv("EVS_TEST_PG");
    char args[4096], path[PATH_MAX + 32], cmd[4096 + 256];
    assert_non_null(uri);
    snprintf(args, sizeof args,
             "--quick --events 2000 --seconds 0.3 --warmup 0 --scenarios "
             "append-1,batch,aggregate,stream-batches --peers "
             "postgres,messagedb --pg-uri '%s' --transport none --no-plots",
             uri);
    json_t *root = run_bench(args, "pgpeers", "pg");
    check_accounting(root);
    json_t *pp = check_pg_peer(root, "postgres", raw, 2);
    json_t *pm = check_pg_peer(root, "messagedb", mdb, 4);
    /* Message DB was loaded with the same events */
    assert_int_equal(u(get(pm, "load"), "events"),
                     u(get(get(root, "generator"), "stats"), "events"));
    md m;
    snprintf(path, sizeof path, "%s/pgpeers/report.md", g_dir);
    md_load(&m, path);
    check_pg_side_by_side(pp, &m, "PostgreSQL");
    check_pg_side_by_side(pm, &m, "Message DB");
    assert_true(md_find(&m, 0, "| PostgreSQL peers' server |") >= 0);
    assert_true(md_find(&m, 0, "Compared beside evstore's embedded "
                               "figures") >= 0);
    md_free(&m);
    json_decref(root);
    /* their databases are gone */
    snprintf(cmd, sizeof cmd, "test \"$(psql -X -At -d '%s' -c \"SELECT "
             "count(*) FROM pg_database WHERE datname LIKE 'evs_bench_%%'\")"
             "\" = 0", uri);
    assert_int_equal(system(cmd), 0);
}

/* --pg-throwaway: the bench starts its own cluster under --dir, runs the
 * postgres peer on it, then stops it and removes its directory. */
static void test_pg_throwaway(void **state)
{
    (void)state;
    char path[PATH_MAX + 32], line[1024], dir[PATH_MAX] = "";
    char cmd[PATH_MAX * 2 + 64];
    /* the user postgres runs the cluster (as root): it must reach --dir */
    assert_int_equal(chmod(g_dir, 0755), 0);
    json_t *root = run_bench("--quick --events 500 --seconds 0.2 --warmup 0 "
                             "--scenarios append-1 --threads 1 --peers "
                             "postgres --pg-throwaway --transport none "
                             "--no-plots", "throwaway", "tw");
    static const char *const raw[] = {"append-1"};
    json_t *pp = check_pg_peer(root, "postgres", raw, 1);
    assert_non_null(strstr(json_string_value(get(pp, "server")),
                           "throwaway cluster in "));
    json_decref(root);
    /* its directory, from the progress line, is gone, and so is every
       evs-bench-* directory the run made */
    snprintf(path, sizeof path, "%s/twstderr", g_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        const char *in = strstr(line, ") in /");
        if (strstr(line, "evs bench: PostgreSQL ") && in) {
            snprintf(dir, sizeof dir, "%s", in + 5);
            dir[strcspn(dir, "\n")] = 0;
        }
    }
    fclose(f);
    assert_true(dir[0] == '/');
    assert_non_null(strstr(dir, "/evs-bench-pg-"));
    assert_int_not_equal(access(dir, F_OK), 0);
    snprintf(cmd, sizeof cmd, "ls -d '%s'/evs-bench-* >/dev/null 2>&1",
             g_dir);
    assert_int_not_equal(system(cmd), 0);
    /* and no server of it is left running ("[e]" so that the shell
       running pgrep does not match itself) */
    snprintf(cmd, sizeof cmd, "pgrep -f '[e]%s' >/dev/null",
             strstr(dir, "/evs-bench-pg-") + 2);
    assert_int_not_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_bench-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_run),
        cmocka_unit_test(test_peers_run),
        cmocka_unit_test(test_transport_run),
    };
    /* `test_bench pg`: the PostgreSQL peers only (EVS_TEST_PG) */
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test(test_pg_peers_run),
        cmocka_unit_test(test_pg_throwaway),
    };
    int pg = argc > 1 && strcmp(argv[1], "pg") == 0;
    int rc = pg ? cmocka_run_group_tests_name("test_bench_peers_pg", pg_tests,
                                              NULL, NULL)
                : cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[PATH_MAX + 16];
    if (rc == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_dir);
    } else {
        fprintf(stderr, "test_bench: results kept in %s\n", g_dir);
    }
    return rc;
}
