/*
 * report.c -- the report of `evs bench`: OUT/report.md for people (like
 * the seeds' reports: a targets table with verdicts, then the details),
 * OUT/report.json with every figure for machines (built with jansson), and
 * PNG plots drawn by gnuplot from .dat/.gp files left beside them.
 *
 * The Markdown and the JSON are written from the same suite_report with
 * the same formats (RATE_FMT, MS_FMT), and tests/test_bench.c checks that
 * every figure of the targets and level tables equals the JSON's.
 */
#include "report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Targets                                                             */
/* ------------------------------------------------------------------ */

static int is_rate(bench_metric m)
{
    return m == BENCH_OPS_PER_S || m == BENCH_ITEMS_PER_S;
}

/* A BENCH_FIGURE target's figure (suite.h, bench_target_figure), or NULL
 * (and for every other target). */
static const bench_target_figure *t_fig(const bench_scenario *sc,
                                        const bench_target *t)
{
    if (t->metric != BENCH_FIGURE || !sc->target_figures ||
        t < sc->targets || t >= sc->targets + sc->ntargets)
        return NULL;
    const bench_target_figure *f = &sc->target_figures[t - sc->targets];
    return f->figure ? f : NULL;
}

/* A target on a rate (printed with one decimal): a rate metric, or a
 * figure whose name has "_per_s" (suite.h, bench_figure). */
static int target_rate(const bench_scenario *sc, const bench_target *t)
{
    if (t->metric == BENCH_FIGURE)
        return t_fig(sc, t) && strstr(t_fig(sc, t)->figure, "_per_s") != NULL;
    return is_rate(t->metric);
}

static double metric_of(const level_result *l, bench_metric m)
{
    switch (m) {
    case BENCH_OPS_PER_S: return l->ops_per_s;
    case BENCH_ITEMS_PER_S: return l->items_per_s;
    case BENCH_P50_MS: return l->lat.p50;
    case BENCH_P95_MS: return l->lat.p95;
    case BENCH_P99_MS: return l->lat.p99;
    case BENCH_FIGURE: return 0; /* not a level's: judge() */
    }
    return 0;
}

static const char *metric_key(bench_metric m)
{
    switch (m) {
    case BENCH_OPS_PER_S: return "ops_per_s";
    case BENCH_ITEMS_PER_S: return "items_per_s";
    case BENCH_P50_MS: return "p50_ms";
    case BENCH_P95_MS: return "p95_ms";
    case BENCH_P99_MS: return "p99_ms";
    case BENCH_FIGURE: return "figure";
    }
    return "?";
}

/* The unit of a metric's figures, e.g. "ops/s", "events/s", "ms p95". */
static void metric_unit(char *out, size_t size, const bench_scenario *sc,
                        const bench_target *t)
{
    switch (t->metric) {
    case BENCH_OPS_PER_S: snprintf(out, size, "ops/s"); break;
    case BENCH_ITEMS_PER_S:
        snprintf(out, size, "%s/s", sc->item ? sc->item : "items");
        break;
    case BENCH_P50_MS: snprintf(out, size, "ms p50"); break;
    case BENCH_P95_MS: snprintf(out, size, "ms p95"); break;
    case BENCH_P99_MS: snprintf(out, size, "ms p99"); break;
    case BENCH_FIGURE:
        snprintf(out, size, "%s",
                 t_fig(sc, t) && t_fig(sc, t)->unit ? t_fig(sc, t)->unit : "");
        break;
    }
}

/* A level whose every operation ended cleanly: no error, no conflict. */
static int level_clean(const level_result *l)
{
    return l->c.errors == 0 && l->c.conflicts == 0 && l->warm.errors == 0;
}

/* The level a target with threads == 0 is judged at: the best by its
 * metric among the levels that could meet it (clean ones for a rate,
 * error-free ones with samples for a latency), else the best of all. */
static const level_result *best_level(const scen_result *s,
                                      const bench_target *t)
{
    const level_result *best = NULL, *best_ok = NULL;
    for (int i = 0; i < s->n; i++) {
        const level_result *l = &s->lv[i];
        double v = metric_of(l, t->metric);
        int usable = is_rate(t->metric) ? level_clean(l)
                                        : l->c.errors == 0 && l->lat.n > 0;
        int better_all = !best || (t->at_least
                                       ? v > metric_of(best, t->metric)
                                       : v < metric_of(best, t->metric));
        int better_ok = !best_ok ||
                        (t->at_least ? v > metric_of(best_ok, t->metric)
                                     : v < metric_of(best_ok, t->metric));
        if (better_all)
            best = l;
        if (usable && better_ok)
            best_ok = l;
    }
    return best_ok ? best_ok : best;
}

static void judge(target_result *tr, const scen_result *s)
{
    const bench_target *t = tr->t;
    const level_result *l = NULL;

    tr->verdict = "not run";
    if (!s->ran) {
        snprintf(tr->note, sizeof tr->note, "%s",
                 s->setup_error[0] ? "the scenario's setup failed"
                                   : "the scenario did not run");
        return;
    }
    if (t->metric == BENCH_FIGURE) {
        /* a figure of the scenario's own, judged with the outcomes of the
         * level it names */
        const bench_figure *fg = NULL;
        const bench_target_figure *tf = t_fig(s->sc, t);
        for (int i = 0; i < s->fig.n && tf; i++)
            if (strcmp(s->fig.f[i].name, tf->figure) == 0)
                fg = &s->fig.f[i];
        if (fg)
            l = level_find(s->lv, s->n, fg->threads);
        if (!fg || !l) {
            snprintf(tr->note, sizeof tr->note, "%.190s",
                     s->fig.note[0] ? s->fig.note : "not measured");
            return;
        }
        tr->have = 1;
        tr->threads = l->threads;
        tr->measured = fg->value;
        int ok = t->at_least ? fg->value >= t->value : fg->value <= t->value;
        int lclean = target_rate(s->sc, t) ? level_clean(l)
                                           : l->c.errors == 0 && l->lat.n > 0;
        if (!lclean) {
            ok = 0;
            snprintf(tr->note, sizeof tr->note,
                     "errors at the level it depends on");
        }
        if (!s->accounting_ok) {
            ok = 0;
            snprintf(tr->note, sizeof tr->note, "the outcomes did not add up");
        } else if (s->check == 1) {
            ok = 0;
            snprintf(tr->note, sizeof tr->note, "the scenario's check failed");
        }
        tr->verdict = ok ? "met" : "not met";
        return;
    }
    if (t->threads > 0) {
        l = level_find(s->lv, s->n, t->threads);
        if (!l) {
            snprintf(tr->note, sizeof tr->note,
                     "judged at %d threads, a level this run did not have",
                     t->threads);
            return;
        }
    } else {
        l = best_level(s, t);
        if (!l) {
            snprintf(tr->note, sizeof tr->note, "no level ran");
            return;
        }
    }
    tr->have = 1;
    tr->threads = l->threads;
    tr->measured = metric_of(l, t->metric);
    int ok = t->at_least ? tr->measured >= t->value
                         : tr->measured <= t->value;
    if (is_rate(t->metric) && !level_clean(l)) {
        ok = 0;
        snprintf(tr->note, sizeof tr->note,
                 "errors or conflicts at this level: a throughput target is "
                 "met only when every operation ended cleanly");
    } else if (!is_rate(t->metric) && (l->c.errors || l->lat.n == 0)) {
        ok = 0;
        snprintf(tr->note, sizeof tr->note, "%s",
                 l->lat.n == 0 ? "no operation measured"
                               : "errors at this level");
    }
    if (!s->accounting_ok) {
        ok = 0;
        snprintf(tr->note, sizeof tr->note, "the outcomes did not add up");
    } else if (s->check == 1) {
        ok = 0;
        snprintf(tr->note, sizeof tr->note, "the scenario's check failed");
    }
    tr->verdict = ok ? "met" : "not met";
}

void report_targets(suite_report *r)
{
    int n = 0;
    for (int i = 0; i < r->nsr; i++)
        n += r->sr[i].sc->ntargets;
    r->tr = xcalloc((size_t)n, sizeof *r->tr);
    r->ntr = 0;
    for (int i = 0; i < r->nsr; i++) {
        const scen_result *s = &r->sr[i];
        for (int k = 0; k < s->sc->ntargets; k++) {
            target_result *tr = &r->tr[r->ntr++];
            tr->sc = s->sc;
            tr->t = &s->sc->targets[k];
            judge(tr, s);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Markdown                                                            */
/* ------------------------------------------------------------------ */

/* Table cells must not hold '|' or line breaks. */
static void md_cell(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static const char *plural(long n) { return n == 1 ? "" : "s"; }

static void md_target_value(FILE *f, const target_result *tr)
{
    char unit[64];
    double v = tr->t->value;
    metric_unit(unit, sizeof unit, tr->sc, tr->t);
    /* whole numbers in full (1000000, not 1e+06) */
    if (v == floor(v) && fabs(v) < 1e15)
        fprintf(f, "%s %.0f %s", tr->t->at_least ? "≥" : "≤", v, unit);
    else
        fprintf(f, "%s %g %s", tr->t->at_least ? "≥" : "≤", v, unit);
}

static void md_targets(FILE *f, const suite_report *r)
{
    if (r->ntr == 0) {
        fprintf(f, "_No scenario of this run has a target._\n");
        return;
    }
    fprintf(f, "| target | source | scenario | level | target value | "
               "measured | verdict | note |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->ntr; i++) {
        const target_result *tr = &r->tr[i];
        char unit[64];
        metric_unit(unit, sizeof unit, tr->sc, tr->t);
        fputs("| ", f);
        md_cell(f, tr->t->name);
        fputs(" | ", f);
        md_cell(f, tr->t->source);
        fprintf(f, " | `%s` | ", tr->sc->name);
        /* a figure's level is its own, not the best one */
        int at = tr->t->threads || tr->t->metric == BENCH_FIGURE;
        if (!tr->have)
            fprintf(f, "-");
        else
            fprintf(f, "%s%d thread%s%s", at ? "" : "best (", tr->threads,
                    plural(tr->threads), at ? "" : ")");
        fputs(" | ", f);
        md_target_value(f, tr);
        fputs(" | ", f);
        if (!tr->have)
            fprintf(f, "-");
        else if (target_rate(tr->sc, tr->t))
            fprintf(f, RATE_FMT " %s", tr->measured, unit);
        else
            fprintf(f, MS_FMT " %s", tr->measured, unit);
        fprintf(f, " | **%s** | ", tr->verdict);
        md_cell(f, tr->note[0] ? tr->note : "");
        fputs(" |\n", f);
    }
}

static const char *scen_status(const scen_result *s, const suite_report *r)
{
    if (!r->gen_ok)
        return "not run";
    if (!s->ran)
        return "FAILED";
    return s->failed ? "FAILED" : "ok";
}

static void md_side_by_side(FILE *f, const suite_report *r);
static void md_peer_status(FILE *f, const peer_result *p);

void report_summary_md(FILE *f, const suite_report *r, const char *dir)
{
    const bench_options *o = r->o;
    int met = 0, notmet = 0, notrun = 0, failed = 0, run = 0;
    for (int i = 0; i < r->ntr; i++) {
        if (strcmp(r->tr[i].verdict, "met") == 0)
            met++;
        else if (strcmp(r->tr[i].verdict, "not met") == 0)
            notmet++;
        else
            notrun++;
    }
    for (int i = 0; i < r->nsr; i++) {
        failed += r->sr[i].failed;
        run += r->sr[i].ran || r->sr[i].failed; /* a failed setup ran */
    }

    fprintf(f, "# evstore performance report (`evs bench`)\n\n");
    fprintf(f, "%s run, %s%s%s, evstore %s, %s store (%s); %g s "
               "measured per level after %g s of warm-up (excluded). "
               "Exit status %d.\n\n",
            o->quick ? "Quick" : "Full", r->date, r->label ? ", " : "",
            r->label ? r->label : "", r->version,
            r->fresh ? "a fresh embedded" : "the given", r->store, r->seconds,
            r->warmup, r->status);
    fprintf(f, "## Summary\n\n");
    fprintf(f, "Targets: %d met, %d not met, %d not run. Scenarios: %d run, "
               "%d failed.\n\n",
            met, notmet, notrun, run, failed);
    md_targets(f, r);
    fprintf(f, "\n");
    if (r->explain_run) {
        int used = 0, notused = 0, xfailed = 0;
        for (int i = 0; i < r->nex; i++) {
            xfailed += r->ex[i].failed;
            used += !r->ex[i].failed && r->ex[i].used > 0;
            notused += !r->ex[i].failed && r->ex[i].used == 0;
        }
        fprintf(f, "PostgreSQL EXPLAIN: %d hot queries use their intended "
                   "index, %d do not%s",
                used, notused, notused ? " (" : "");
        for (int i = 0, k = 0; i < r->nex; i++)
            if (!r->ex[i].failed && r->ex[i].used == 0)
                fprintf(f, "%s%s", k++ ? ", " : "", r->ex[i].name);
        fprintf(f, "%s; %d failed%s%s.\n\n", notused ? ")" : "", xfailed,
                r->explain_error[0] ? "; capture stopped: " : "",
                r->explain_error);
    }
    if (!r->gen_ok)
        fprintf(f, "**The data could not be loaded: %s.** No scenario "
                   "ran.\n\n",
                r->gen_error);
    fprintf(f, "| scenario | outcome | levels (threads) | attempted | "
               "committed | rejected | conflicts | errors |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->nsr; i++) {
        const scen_result *s = &r->sr[i];
        op_counts sum = {0};
        fprintf(f, "| `%s` | %s | ", s->sc->name, scen_status(s, r));
        for (int k = 0; k < s->n; k++) {
            counts_add(&sum, &s->lv[k].c);
            fprintf(f, "%s%d", k ? ", " : "", s->lv[k].threads);
        }
        fprintf(f, "%s | %llu | %llu | %llu | %llu | %llu |\n",
                s->n ? "" : "-", (unsigned long long)sum.attempted,
                (unsigned long long)sum.committed,
                (unsigned long long)sum.rejected,
                (unsigned long long)sum.conflicts,
                (unsigned long long)sum.errors);
    }
    for (int i = 0; i < r->nsr; i++) {
        const scen_result *s = &r->sr[i];
        if (s->setup_error[0])
            fprintf(f, "\n- `%s`: setup failed: %s", s->sc->name,
                    s->setup_error);
        if (!s->accounting_ok)
            fprintf(f, "\n- `%s`: **the outcomes of a level do not add up "
                       "to the operations attempted**",
                    s->sc->name);
        for (int k = 0; k < s->n; k++)
            if (s->lv[k].error[0])
                fprintf(f, "\n- `%s`, %d thread%s: first error: %s",
                        s->sc->name, s->lv[k].threads,
                        plural(s->lv[k].threads), s->lv[k].error);
        if (s->check == 1)
            fprintf(f, "\n- `%s`: check failed: %s", s->sc->name,
                    s->check_error);
    }
    fprintf(f, "\n\n");
    md_side_by_side(f, r);
    transport_md_summary(f, r);
    fprintf(f, "Full report: %s/report.md; every figure: "
               "%s/report.json; plots: %s.\n",
            dir, dir, r->plots_drawn ? "the .png files there" : r->plots_note);
}

static void md_environment(FILE *f, const suite_report *r)
{
    fprintf(f, "## Environment\n\n");
    md_machine_rows(f, &r->m, r->label, r->version, r->store);
    if (r->fsync_ok)
        fprintf(f, "| fdatasync at start | %zu-byte write + fdatasync, %ld "
                   "samples in %s: p50 " MS_FMT " ms, p90 " MS_FMT
                   " ms, p99 " MS_FMT " ms, max " MS_FMT " ms |\n",
                r->fsync_bytes, r->fsync_n, r->fsync_dir, r->fsync.p50,
                r->fsync.p90, r->fsync.p99, r->fsync.max);
    else
        fprintf(f, "| fdatasync at start | not measured: %s |\n",
                r->fsync_error);
    fprintf(f, "| durability | fdatasync on (see below) |\n");
    fprintf(f, "| store | %s |\n",
            r->fresh ? "fresh, in a temporary directory (removed after "
                       "unless --keep)"
                     : "given by --db");
    for (int i = 0; i < BENCH_NPEERS; i++) {
        fprintf(f, "| peer %s | ", r->peers[i].name);
        md_peer_status(f, &r->peers[i]);
        fprintf(f, " |\n");
    }
    /* the PostgreSQL peers' server (the same for both: said once) */
    for (int i = 0; i < BENCH_NPEERS; i++)
        if (r->peers[i].server[0]) {
            fprintf(f, "| PostgreSQL peers' server | ");
            md_cell(f, r->peers[i].server);
            fprintf(f, " |\n");
            break;
        }
    transport_md_env(f, r);
    fprintf(f, "| run time | %.1f s (load average at start / end: %s / "
               "%s) |\n\n",
            r->total_s, r->load_start, r->load_end);
}

static void md_durability(FILE *f)
{
    fprintf(f,
            "## Durability\n\n"
            "fdatasync on: the embedded store has no other mode. An append "
            "(evs_append, evs_append_ex, the append of a command) returns "
            "success only after its log records were written and "
            "fdatasync'ed; appends of concurrent callers share one "
            "fdatasync (group commit). The index (LMDB) is derived from "
            "the log and is not synced per commit: after a crash it is "
            "caught up from the log. So every operation counted as "
            "committed that wrote events was durable when it returned, and "
            "reads never see an event that is not durable.\n\n");
}

static void md_index_rebuild(FILE *f, const suite_report *r)
{
    const rebuild_figure *b = &r->rebuild;
    if (!b->run)
        return;
    fprintf(f, "## Index rebuild from the log\n\n"
               "After the load: `<store>/index` deleted and the store opened "
               "read-write (*open without an index*: the whole open, with the "
               "rebuild recovery runs after an OS crash or in a copy). The log "
               "is in the page cache (the load just wrote it).\n\n");
    if (!b->ok) {
        fprintf(f, "**Failed: %s**\n\n", b->error);
        return;
    }
    fprintf(f, "| events | open without an index s | events/s |\n|---|---|---|\n");
    fprintf(f, "| %llu | %.3f | " RATE_FMT " |\n\n", (unsigned long long)b->events,
            b->reopen_s, b->reopen_s > 0 ? (double)b->events / b->reopen_s : 0.0);
}

static void md_generator(FILE *f, const suite_report *r)
{
    const gen_stats *g = &r->gst;
    fprintf(f, "## Data load (generator)\n\n");
    fprintf(f, "Before the scenarios, `gen_load` (the generator of `evs "
               "generate`, seed %llu) wrote the data set in batched appends "
               "of up to %u events, durable like every append, with a "
               "snapshot every %u events where the aggregate has them. "
               "Timed as a whole (wall time).\n\n",
            (unsigned long long)r->gen.seed, r->gen.batch_events,
            r->gen.snapshot_every);
    if (!r->gen_ok) {
        fprintf(f, "**Failed: %s**\n\n", r->gen_error);
        return;
    }
    fprintf(f, "| events | streams | snapshots | appends | tenants | payload "
               "MiB | seconds | events/s |\n|---|---|---|---|---|---|---|---|\n");
    fprintf(f, "| %llu | %llu | %llu | %llu | %u | %.1f | %.3f | " RATE_FMT
               " |\n\n",
            (unsigned long long)g->events, (unsigned long long)g->streams,
            (unsigned long long)g->snapshots, (unsigned long long)g->appends,
            g->tenants, (double)g->data_bytes / 1048576.0, r->gen_s,
            r->gen_s > 0 ? (double)g->events / r->gen_s : 0.0);
    double ev = g->events ? (double)g->events : 1;
    uint64_t top = 0;
    uint32_t ntop = (g->tenants + 4) / 5;
    /* the 20 % of the tenants holding most events */
    uint64_t *pt = xcalloc(g->tenants ? g->tenants : 1, sizeof *pt);
    for (uint32_t i = 0; i < g->tenants && i < GEN_MAX_TENANTS; i++)
        pt[i] = g->per_tenant[i];
    for (uint32_t k = 0; k < ntop; k++) {
        uint32_t m = k;
        for (uint32_t i = k + 1; i < g->tenants; i++)
            if (pt[i] > pt[m])
                m = i;
        uint64_t t = pt[k];
        pt[k] = pt[m];
        pt[m] = t;
        top += pt[k];
    }
    free(pt);
    fprintf(f, "Shape: payloads 100-500 B %.1f %%, 1-5 KB %.1f %%, 5-10 KB "
               "%.1f %% (other: %llu); the top %u of %u tenants hold %.1f %% "
               "of the events; stream lengths %llu..%llu (%llu streams of 1 "
               "event, %llu over 100); %.1f %% on weekday business hours.\n\n",
            100.0 * (double)g->size_bucket[0] / ev,
            100.0 * (double)g->size_bucket[1] / ev,
            100.0 * (double)g->size_bucket[2] / ev,
            (unsigned long long)g->size_other, ntop, g->tenants,
            100.0 * (double)top / ev, (unsigned long long)g->stream_len_min,
            (unsigned long long)g->stream_len_max,
            (unsigned long long)g->streams_len_1,
            (unsigned long long)g->streams_len_over_100,
            100.0 * (double)g->business_hours / ev);
}

static void md_levels(FILE *f, const scen_result *s)
{
    fprintf(f, "| threads | attempted | committed | rejected | conflicts | "
               "errors | ops/s | %s/s | p50 ms | p90 ms | p95 ms | p99 ms | "
               "max ms |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            s->sc->item ? s->sc->item : "items");
    for (int i = 0; i < s->n; i++) {
        const level_result *l = &s->lv[i];
        fprintf(f, "| %d | %llu | %llu | %llu | %llu | %llu | " RATE_FMT
                   " | ",
                l->threads, (unsigned long long)l->c.attempted,
                (unsigned long long)l->c.committed,
                (unsigned long long)l->c.rejected,
                (unsigned long long)l->c.conflicts,
                (unsigned long long)l->c.errors, l->ops_per_s);
        if (s->sc->item)
            fprintf(f, RATE_FMT, l->items_per_s);
        else
            fprintf(f, "-");
        fprintf(f, " | " MS_FMT " | " MS_FMT " | " MS_FMT " | " MS_FMT
                   " | " MS_FMT " |\n",
                l->lat.p50, l->lat.p90, l->lat.p95, l->lat.p99, l->lat.max);
    }
}

/* The accounting line, each level's first error and the check's outcome,
 * for a scenario of evstore (what = "store") or of a peer ("database";
 * none_note says why a peer scenario without a check needs none). */
static void md_outcomes(FILE *f, const scen_result *s, const char *what,
                        const char *none_note)
{
    fprintf(f, "Accounting: %s.\n\n",
            s->accounting_ok ? "attempted = committed + rejected + "
                               "conflicts + errors at every level, warm-up "
                               "included"
                             : "**BROKEN: the outcomes of a level do not add "
                               "up to the operations attempted**");
    for (int i = 0; i < s->n; i++)
        if (s->lv[i].error[0])
            fprintf(f, "- %d thread%s, first error: %s\n", s->lv[i].threads,
                    plural(s->lv[i].threads), s->lv[i].error);
    if (s->check == 1)
        fprintf(f, "Check: **FAILED**: %s (%.2f s)\n\n", s->check_error,
                s->check_s);
    else if (s->check == 0)
        fprintf(f, "Check: the %s agrees with the outcomes (%.2f s).\n\n", what,
                s->check_s);
    else
        fprintf(f, "Check: none for this scenario%s.\n\n", none_note);
}

static void md_scenario(FILE *f, const suite_report *r, const scen_result *s)
{
    const bench_scenario *sc = s->sc;
    fprintf(f, "### `%s`: %s\n\n", sc->name, sc->title ? sc->title : "");
    if (sc->what)
        fprintf(f, "%s\n\n", sc->what);
    if (!r->gen_ok) {
        fprintf(f, "_Not run: the data could not be loaded._\n\n");
        return;
    }
    fprintf(f, "Outcome: **%s**. Setup %.2f s (not timed); its own data in "
               "tenant `%s`.\n\n",
            scen_status(s, r), s->setup_s, s->tenant);
    if (!s->ran) {
        fprintf(f, "Setup failed: %s\n\n", s->setup_error);
        return;
    }
    md_levels(f, s);
    fprintf(f, "\nMeasured windows (from the start of the window to the "
               "return of its last operation):");
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%s %d thread%s %.3f s", i ? "," : "", s->lv[i].threads,
                plural(s->lv[i].threads), s->lv[i].window_s);
    fprintf(f, ". Warm-up: %g s per level, excluded from every figure "
               "above; operations started in it:",
            s->n ? s->lv[0].warmup_s : 0.0);
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%s %d thread%s %llu", i ? "," : "", s->lv[i].threads,
                plural(s->lv[i].threads),
                (unsigned long long)s->lv[i].warm.attempted);
    fprintf(f, ".\n\n");
    if (s->fig.md) /* the scenario's own figures (suite.h) */
        fprintf(f, "%s\n", s->fig.md);
    else if (s->fig.note[0])
        fprintf(f, "**%s**\n\n", s->fig.note);
    md_outcomes(f, s, "store", "");
    if (r->plots_drawn && s->n)
        fprintf(f, "![latency percentiles of `%s`](latency-%s.png)\n\n",
                sc->name, sc->name);
}

static const char *explain_verdict(const explain_entry *x)
{
    return x->failed      ? "EXPLAIN failed"
           : x->used > 0  ? "used"
           : x->used == 0 ? "**not used**"
                          : "n/a (a function call)";
}

/* The PostgreSQL-only section: EXPLAIN (ANALYZE, BUFFERS) of the hot
 * queries, a table of verdicts, then every plan. */
static void md_explain(FILE *f, const suite_report *r)
{
    if (!r->explain_run)
        return;
    fprintf(f, "## PostgreSQL: EXPLAIN (ANALYZE, BUFFERS) of the hot "
               "queries\n\n"
               "Run after the scenarios, on the loaded data: each statement "
               "as the backend sends it (the prepared statements; the "
               "dynamic SELECT of evstore.read_query and the condition of "
               "evstore.append, built by the server's evstore.query_pred), "
               "parameters bound and taken from the data (a sample event of "
               "the biggest tenant). Custom plans (parameter values known "
               "to the planner). The appends run in a transaction that is "
               "rolled back. Verdict: the intended index appears in the "
               "plan, and no Seq Scan on events.\n\n");
    if (r->analyzed)
        fprintf(f, "Statistics: the runner ran ANALYZE on the store's tables "
                   "after the data load and after each scenario's setup "
                   "(%.1f s in all, untimed), as autovacuum would after a "
                   "bulk load.\n\n",
                r->analyze_s);
    else
        fprintf(f, "Statistics: **ANALYZE after the load did not run or "
                   "failed**: the plans may be made without statistics.\n\n");
    if (r->explain_error[0])
        fprintf(f, "**The capture stopped: %s.**\n\n", r->explain_error);
    fprintf(f, "| query | parameters | intended index | verdict | execution "
               "ms |\n|---|---|---|---|---|\n");
    for (int i = 0; i < r->nex; i++) {
        const explain_entry *x = &r->ex[i];
        fprintf(f, "| ");
        md_cell(f, x->name);
        fprintf(f, " | ");
        md_cell(f, x->params);
        fprintf(f, " | %s | %s | ", x->index, explain_verdict(x));
        if (x->exec_ms >= 0)
            fprintf(f, MS_FMT, x->exec_ms);
        else
            fprintf(f, "-");
        fprintf(f, " |\n");
    }
    fprintf(f, "\n");
    for (int i = 0; i < r->nex; i++) {
        const explain_entry *x = &r->ex[i];
        fprintf(f, "### %s\n\n%s; intended index %s: %s.\n\n```\n%s```\n\n",
                x->name, x->params, x->index, explain_verdict(x), x->plan);
    }
}

/* ------------------------------------------------------------------ */
/* Peers (suite.h, BENCH_PEER_*): side by side, and their own details  */
/* ------------------------------------------------------------------ */

/* a / b, or -1 ("-") when either is missing or b is 0. */
static double ratio(double a, double b)
{
    return a > 0 && b > 0 ? a / b : -1;
}

static void md_ratio(FILE *f, double v)
{
    if (v < 0)
        fprintf(f, "-");
    else
        fprintf(f, "%.2f", v);
}

static double peer_load_rate(const peer_result *p)
{
    return p->load_s > 0 ? (double)p->load_events / p->load_s : 0;
}

static double evs_load_rate(const suite_report *r)
{
    return r->gen_s > 0 ? (double)r->gst.events / r->gen_s : 0;
}

/* "ran", "skipped: ..." or "FAILED: ...", for the environment. */
static void md_peer_status(FILE *f, const peer_result *p)
{
    if (p->ran && !p->failed)
        fprintf(f, "ran (%s %s)", p->title, p->version);
    else if (p->ran)
        fprintf(f, "ran with failures (%s %s): see \"Peers\"", p->title,
                p->version);
    else if (p->failed)
        fprintf(f, "FAILED: ");
    if (!p->ran)
        md_cell(f, p->note[0] ? p->note : "did not run");
}

/*
 * The side-by-side section: per peer that ran, per shared scenario and
 * per level both had, evstore's figure, the peer's, and the ratio
 * (throughput: evstore / peer; latency: peer / evstore; above 1 evstore
 * is ahead either way).
 */
static void md_side_by_side(FILE *f, const suite_report *r)
{
    int any = 0;
    for (int i = 0; i < BENCH_NPEERS; i++)
        any |= r->peers[i].requested;
    fprintf(f, "## Side by side: evstore and the alternatives\n\n");
    if (!any) {
        fprintf(f, "No peer was measured (`--peers none`).\n\n");
        return;
    }
    fprintf(f, "Measured in this run, on this machine, on the same generated "
               "data, one after the other (evstore's scenarios first, then "
               "each peer's), with the same levels, windows and accounting. "
               "Ratio: evstore ÷ peer for ops/s, peer ÷ evstore for "
               "latency; above 1, evstore is ahead. docs/BENCH.md, "
               "\"Peers\", says how each peer is set up and why that is fair "
               "to it.\n\n");
    for (int i = 0; i < BENCH_NPEERS; i++) {
        const peer_result *p = &r->peers[i];
        if (!p->requested)
            continue;
        fprintf(f, "### %s %s\n\n", p->title, p->version);
        if (!p->ran) {
            fprintf(f, "Not measured: ");
            md_cell(f, p->note);
            fprintf(f, "\n\n");
            continue;
        }
        if (p->compare[0])
            fprintf(f, "Compared %s.\n\n", p->compare);
        if (p->load_events == 0) {
            fprintf(f, "Data load: not compared (%s).\n\n",
                    p->load_how ? p->load_how : "not loaded");
        } else {
            fprintf(f, "Data load: evstore " RATE_FMT " events/s, %s "
                       RATE_FMT " events/s (%llu events each), ratio ",
                    evs_load_rate(r), p->title, peer_load_rate(p),
                    (unsigned long long)p->load_events);
            md_ratio(f, ratio(evs_load_rate(r), peer_load_rate(p)));
            fprintf(f, ".\n\n");
        }
        fprintf(f, "| scenario | threads | evstore ops/s | %s ops/s | ratio "
                   "| evstore p50 ms | %s p50 ms | ratio | evstore p99 ms | "
                   "%s p99 ms | ratio | notes |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                p->title, p->title, p->title);
        for (int k = 0; k < p->nsr; k++) {
            const scen_result *ps = &p->sr[k], *es = p->evs[k];
            for (int l = 0; l < ps->n; l++) {
                const level_result *pl = &ps->lv[l];
                const level_result *el = level_find(es->lv, es->n,
                                                    pl->threads);
                fprintf(f, "| `%s` | %d | ", ps->sc->name, pl->threads);
                if (el)
                    fprintf(f, RATE_FMT, el->ops_per_s);
                else
                    fprintf(f, "-");
                fprintf(f, " | " RATE_FMT " | ", pl->ops_per_s);
                md_ratio(f, el ? ratio(el->ops_per_s, pl->ops_per_s) : -1);
                fprintf(f, " | ");
                if (el)
                    fprintf(f, MS_FMT, el->lat.p50);
                else
                    fprintf(f, "-");
                fprintf(f, " | " MS_FMT " | ", pl->lat.p50);
                md_ratio(f, el ? ratio(pl->lat.p50, el->lat.p50) : -1);
                fprintf(f, " | ");
                if (el)
                    fprintf(f, MS_FMT, el->lat.p99);
                else
                    fprintf(f, "-");
                fprintf(f, " | " MS_FMT " | ", pl->lat.p99);
                md_ratio(f, el ? ratio(pl->lat.p99, el->lat.p99) : -1);
                fprintf(f, " | ");
                int notes = 0;
                if (!el) {
                    fprintf(f, "evstore did not run this level");
                    notes++;
                } else if (el->c.conflicts || el->c.errors || el->c.rejected) {
                    fprintf(f, "evstore: %llu rejected, %llu conflicts, %llu "
                               "errors", (unsigned long long)el->c.rejected,
                            (unsigned long long)el->c.conflicts,
                            (unsigned long long)el->c.errors);
                    notes++;
                }
                if (pl->c.conflicts || pl->c.errors || pl->c.rejected ||
                    ps->retries[l]) {
                    fprintf(f, "%s%s: %llu rejected, %llu conflicts, %llu "
                               "errors",
                            notes ? "; " : "", p->title,
                            (unsigned long long)pl->c.rejected,
                            (unsigned long long)pl->c.conflicts,
                            (unsigned long long)pl->c.errors);
                    if (p->retries_what)
                        fprintf(f, ", %llu busy retries",
                                (unsigned long long)ps->retries[l]);
                }
                fprintf(f, " |\n");
            }
        }
        fprintf(f, "\n");
        if (p->failed)
            fprintf(f, "**Some of %s's scenarios failed**: see \"Peers\" "
                       "below.\n\n", p->title);
    }
}

static void md_peer_scenario(FILE *f, const peer_result *p,
                             const scen_result *s)
{
    const bench_scenario *sc = s->sc;
    fprintf(f, "#### %s: `%s`\n\n", p->title, sc->name);
    if (sc->what)
        fprintf(f, "%s\n\n", sc->what);
    fprintf(f, "Outcome: **%s**. Setup %.2f s (not timed); its own data in "
               "tenant `%s`.\n\n",
            !s->ran ? "FAILED" : s->failed ? "FAILED" : "ok", s->setup_s,
            s->tenant);
    if (!s->ran) {
        fprintf(f, "Setup failed: %s\n\n", s->setup_error);
        return;
    }
    md_levels(f, s);
    fprintf(f, "\n");
    if (p->retries_what) {
        fprintf(f, "Busy retries (%s):", p->retries_what);
        for (int i = 0; i < s->n; i++)
            fprintf(f, "%s %d thread%s %llu", i ? "," : "",
                    s->lv[i].threads, plural(s->lv[i].threads),
                    (unsigned long long)s->retries[i]);
        fprintf(f, ". ");
    }
    md_outcomes(f, s, "database", " (every answer is checked)");
}

static void md_peers(FILE *f, const suite_report *r)
{
    int any = 0;
    for (int i = 0; i < BENCH_NPEERS; i++)
        any |= r->peers[i].ran;
    if (!any)
        return;
    fprintf(f, "## Peers\n\n");
    for (int i = 0; i < BENCH_NPEERS; i++) {
        const peer_result *p = &r->peers[i];
        if (!p->ran)
            continue;
        fprintf(f, "### %s %s\n\n", p->title, p->version);
        fprintf(f, "Database `%s` (removed after unless --keep), %.1f MiB "
                   "at the end. %s: %s. Schema:\n\n```sql\n%s\n```\n\n",
                p->path, (double)p->bytes / 1048576.0,
                p->load_how ? "Configuration" : "Pragmas", p->pragmas,
                p->schema);
        if (p->compare[0])
            fprintf(f, "Its figures are put %s.\n\n", p->compare);
        if (p->load_how && p->load_events == 0)
            fprintf(f, "Data load: %s.\n\n", p->load_how);
        else if (p->load_how)
            fprintf(f, "Data load: %s; %llu transactions (at most %u events "
                       "each).\n\n"
                       "| events | transactions | seconds | events/s |\n"
                       "|---|---|---|---|\n| %llu | %llu | %.3f | " RATE_FMT
                       " |\n\n",
                    p->load_how, (unsigned long long)p->load_commits,
                    r->gen.batch_events, (unsigned long long)p->load_events,
                    (unsigned long long)p->load_commits, p->load_s,
                    peer_load_rate(p));
        else
            fprintf(f, "Data load: the same generated events (ids, "
                       "timestamps, tags, payloads), no snapshots, in %llu "
                       "transactions (a tenant's run of events, at most %u "
                       "each), then ANALYZE.\n\n"
                       "| events | transactions | seconds | events/s |\n"
                       "|---|---|---|---|\n| %llu | %llu | %.3f | " RATE_FMT
                       " |\n\n",
                    (unsigned long long)p->load_commits, r->gen.batch_events,
                    (unsigned long long)p->load_events,
                    (unsigned long long)p->load_commits, p->load_s,
                    peer_load_rate(p));
        for (int k = 0; k < p->nsr; k++)
            md_peer_scenario(f, p, &p->sr[k]);
    }
}

static void write_md(FILE *f, const suite_report *r, const char *dir)
{
    report_summary_md(f, r, dir);
    fprintf(f, "\n");
    md_environment(f, r);
    md_durability(f);
    md_generator(f, r);
    md_index_rebuild(f, r);
    fprintf(f, "## Scenarios\n\n"
               "Per level: threads calling the operation in a loop; "
               "attempted = committed + rejected + conflicts + errors; "
               "ops/s = committed operations per second of the measured "
               "window; items/s = items the measured operations reported "
               "(events written or read) per second; latency = each "
               "measured operation's timed part, nearest-rank percentiles "
               "over every sample (no averages), milliseconds.\n\n");
    for (int i = 0; i < r->nsr; i++)
        md_scenario(f, r, &r->sr[i]);
    md_peers(f, r);
    transport_md(f, r);
    fprintf(f, "## Throughput vs concurrency\n\n");
    if (r->plots_drawn)
        fprintf(f, "![committed operations per second by threads, every "
                   "scenario](throughput.png)\n\n");
    else
        fprintf(f, "_No plots: %s._\n\n", r->plots_note);
    int peers_ran = 0;
    for (int i = 0; i < BENCH_NPEERS; i++)
        peers_ran |= r->peers[i].ran && r->peers[i].nsr;
    if (peers_ran && r->plots_drawn)
        fprintf(f, "![the shared scenarios: evstore solid, each peer dashed "
                   "in the same colour](throughput-peers.png)\n\n");
    fprintf(f, "## Store at the end\n\n");
    if (r->end_ok)
        fprintf(f, "%llu events in %llu streams of %llu tenants; log %.1f "
                   "MiB in %llu segments, index %.1f MiB.\n\n",
                (unsigned long long)r->end.events,
                (unsigned long long)r->end.streams,
                (unsigned long long)r->end.tenants,
                (double)r->end.log_bytes / 1048576.0,
                (unsigned long long)r->end.segments,
                (double)r->end.index_bytes / 1048576.0);
    else
        fprintf(f, "Not available (evs_stats_get failed).\n\n");
    md_explain(f, r);
    fprintf(f, "## Command\n\n`%s`\n\nSee docs/BENCH.md for what each "
               "scenario does and how to read this report.\n",
            r->o->command ? r->o->command : "evs bench");
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

/* A finite real (jansson refuses NaN and infinities). */
static json_t *real(double v) { return json_real(isfinite(v) ? v : 0.0); }

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *j_lat(const lat_summary *l)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "samples",
                     (json_int_t)l->n, "min", real(l->min), "p50",
                     real(l->p50), "p90", real(l->p90), "p95", real(l->p95),
                     "p99", real(l->p99), "max", real(l->max));
}

static json_t *j_counts(const op_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "attempted",
                     (json_int_t)c->attempted, "committed",
                     (json_int_t)c->committed, "rejected",
                     (json_int_t)c->rejected, "conflicts",
                     (json_int_t)c->conflicts, "errors",
                     (json_int_t)c->errors, "items", (json_int_t)c->items);
}

static json_t *j_level(const scen_result *s, const level_result *l)
{
    json_t *o = json_pack(
        "{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
        "threads", l->threads, "attempted", (json_int_t)l->c.attempted,
        "committed", (json_int_t)l->c.committed, "rejected",
        (json_int_t)l->c.rejected, "conflicts", (json_int_t)l->c.conflicts,
        "errors", (json_int_t)l->c.errors, "items",
        (json_int_t)l->c.items, "ops_per_s", real(l->ops_per_s),
        "items_per_s", s->sc->item ? real(l->items_per_s) : json_null(),
        "latency_ms", j_lat(&l->lat), "warmup_s", real(l->warmup_s),
        "window_s", real(l->window_s));
    json_object_set_new(o, "accounting_ok",
                        json_boolean(counts_ok(&l->c) && counts_ok(&l->warm)));
    json_object_set_new(o, "warmup_excluded", j_counts(&l->warm));
    json_t *curve = json_array();
    for (int i = 0; i < CURVE_POINTS && l->lat.n; i++)
        json_array_append_new(curve, json_pack("[o, o]", real(curve_pct[i]),
                                               real(l->curve_ms[i])));
    json_object_set_new(o, "latency_curve_pct_ms", curve);
    json_object_set_new(
        o, "process",
        json_pack("{s:I, s:o, s:o, s:o, s:o, s:I}", "syncs",
                  (json_int_t)l->syncs, "sync_s", real(l->sync_s),
                  "cpu_user_s", real(l->cpu_user), "cpu_sys_s",
                  real(l->cpu_sys), "other_cpu_s", real(l->other_cpu_s),
                  "context_switches", (json_int_t)l->csw));
    json_object_set_new(o, "first_error",
                        l->error[0] ? json_string(l->error) : json_null());
    return o;
}

static json_t *j_scenario(const suite_report *r, const scen_result *s)
{
    const bench_scenario *sc = s->sc;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(sc->name));
    json_object_set_new(o, "title", str_or_null(sc->title));
    json_object_set_new(o, "what", str_or_null(sc->what));
    json_object_set_new(o, "item", str_or_null(sc->item));
    json_object_set_new(o, "outcome", json_string(scen_status(s, r)));
    json_object_set_new(o, "tenant", json_string(s->tenant));
    json_object_set_new(o, "setup_s", real(s->setup_s));
    json_object_set_new(o, "setup_error", s->setup_error[0]
                                              ? json_string(s->setup_error)
                                              : json_null());
    json_object_set_new(o, "accounting_ok", json_boolean(s->accounting_ok));
    json_object_set_new(o, "check",
                        json_string(s->check < 0    ? "none"
                                    : s->check == 0 ? "held"
                                                    : "failed"));
    json_object_set_new(o, "check_error", s->check_error[0]
                                              ? json_string(s->check_error)
                                              : json_null());
    json_object_set_new(o, "check_s", real(s->check_s));
    json_t *lv = json_array();
    for (int i = 0; i < s->n; i++)
        json_array_append_new(lv, j_level(s, &s->lv[i]));
    json_object_set_new(o, "levels", lv);
    json_t *fig = s->fig.json ? json_loads(s->fig.json, 0, NULL) : NULL;
    json_object_set_new(o, "figures", fig ? fig : json_null());
    return o;
}

static json_t *j_target(const target_result *tr)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(tr->t->name));
    json_object_set_new(o, "source", json_string(tr->t->source));
    json_object_set_new(o, "scenario", json_string(tr->sc->name));
    json_object_set_new(o, "metric",
                        json_string(t_fig(tr->sc, tr->t)
                                        ? t_fig(tr->sc, tr->t)->figure
                                        : metric_key(tr->t->metric)));
    json_object_set_new(o, "comparison",
                        json_string(tr->t->at_least ? ">=" : "<="));
    json_object_set_new(o, "value", real(tr->t->value));
    json_object_set_new(o, "threads", json_integer(tr->t->threads));
    json_object_set_new(o, "judged_threads",
                        tr->have ? json_integer(tr->threads) : json_null());
    json_object_set_new(o, "measured",
                        tr->have ? real(tr->measured) : json_null());
    json_object_set_new(o, "verdict", json_string(tr->verdict));
    json_object_set_new(o, "note",
                        tr->note[0] ? json_string(tr->note) : json_null());
    return o;
}

static json_t *j_generator(const suite_report *r)
{
    const gen_stats *g = &r->gst;
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(r->gen_ok));
    json_object_set_new(o, "error",
                        r->gen_ok ? json_null() : json_string(r->gen_error));
    json_object_set_new(
        o, "config",
        json_pack("{s:I, s:i, s:I, s:I, s:i, s:i, s:i}", "events",
                  (json_int_t)r->gen.events, "tenants", (int)r->gen.tenants,
                  "seed", (json_int_t)r->gen.seed, "end_us",
                  (json_int_t)r->gen.end_us, "months", (int)r->gen.months,
                  "snapshot_every", (int)r->gen.snapshot_every,
                  "batch_events", (int)r->gen.batch_events));
    json_object_set_new(o, "seconds", real(r->gen_s));
    json_object_set_new(o, "events_per_s",
                        real(r->gen_s > 0 ? (double)g->events / r->gen_s : 0));
    json_t *st = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:[I, I, I], s:I, s:i, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I, s:o}",
        "events", (json_int_t)g->events, "streams", (json_int_t)g->streams,
        "snapshots", (json_int_t)g->snapshots, "appends",
        (json_int_t)g->appends, "data_bytes", (json_int_t)g->data_bytes,
        "size_buckets", (json_int_t)g->size_bucket[0],
        (json_int_t)g->size_bucket[1], (json_int_t)g->size_bucket[2],
        "size_other", (json_int_t)g->size_other, "tenants", (int)g->tenants,
        "stream_len_min", (json_int_t)g->stream_len_min, "stream_len_max",
        (json_int_t)g->stream_len_max, "streams_len_1",
        (json_int_t)g->streams_len_1, "streams_len_over_100",
        (json_int_t)g->streams_len_over_100, "first_us",
        (json_int_t)g->first_us, "last_us", (json_int_t)g->last_us,
        "business_hours", (json_int_t)g->business_hours, "gen_seconds",
        real(g->seconds));
    json_t *pt = json_array();
    for (uint32_t i = 0; i < g->tenants && i < GEN_MAX_TENANTS; i++)
        json_array_append_new(pt, json_integer((json_int_t)g->per_tenant[i]));
    json_object_set_new(st, "per_tenant", pt);
    json_object_set_new(o, "stats", st);
    return o;
}

static json_t *j_index_rebuild(const suite_report *r)
{
    const rebuild_figure *b = &r->rebuild;
    if (!b->run)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(b->ok));
    json_object_set_new(o, "error", b->ok ? json_null() : json_string(b->error));
    json_object_set_new(o, "events", json_integer((json_int_t)b->events));
    json_object_set_new(o, "open_without_index_s", real(b->reopen_s));
    json_object_set_new(o, "open_without_index_events_per_s",
                        real(b->reopen_s > 0 ? (double)b->events / b->reopen_s : 0));
    return o;
}

static json_t *j_environment(const suite_report *r)
{
    const machine *m = &r->m;
    json_t *o = json_pack(
        "{s:s, s:i, s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "cpu",
        m->cpu, "cores", (int)m->cores, "ram_gib", real(m->ram_gib),
        "kernel", m->kernel, "fs_type", m->fs_type, "fs_source",
        m->fs_source, "fs_mount", m->fs_mount, "fs_options", m->fs_opts,
        "disk", m->disk, "build", m->build, "evstore_version", r->version);
    json_object_set_new(o, "label", str_or_null(r->label));
    json_object_set_new(o, "store", json_string(r->store));
    json_object_set_new(o, "fresh_store", json_boolean(r->fresh));
    json_t *fs = json_object();
    json_object_set_new(fs, "measured", json_boolean(r->fsync_ok));
    json_object_set_new(fs, "dir", json_string(r->fsync_dir));
    json_object_set_new(fs, "write_bytes", json_integer((json_int_t)r->fsync_bytes));
    json_object_set_new(fs, "samples", json_integer(r->fsync_n));
    json_object_set_new(fs, "latency_ms", j_lat(&r->fsync));
    json_object_set_new(fs, "error",
                        r->fsync_ok ? json_null() : json_string(r->fsync_error));
    json_object_set_new(o, "fdatasync_at_start", fs);
    json_object_set_new(o, "loadavg_start", json_string(r->load_start));
    json_object_set_new(o, "loadavg_end", json_string(r->load_end));
    return o;
}

/* A side-by-side figure: evstore's, the peer's, the ratio (null when a
 * side is missing). */
static json_t *j_pair(const level_result *el, const level_result *pl,
                      double (*get)(const level_result *), int higher_better)
{
    double e = el ? get(el) : 0, p = get(pl);
    double q = !el ? -1 : higher_better ? ratio(e, p) : ratio(p, e);
    return json_pack("{s:o, s:o, s:o}", "evstore", el ? real(e) : json_null(),
                     "peer", real(p), "ratio",
                     q < 0 ? json_null() : real(q));
}

static double lv_ops(const level_result *l) { return l->ops_per_s; }
static double lv_p50(const level_result *l) { return l->lat.p50; }
static double lv_p99(const level_result *l) { return l->lat.p99; }

static json_t *j_peer(const suite_report *r, const peer_result *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "title", json_string(p->title));
    json_object_set_new(o, "version", json_string(p->version));
    json_object_set_new(o, "requested", json_boolean(p->requested));
    json_object_set_new(o, "ran", json_boolean(p->ran));
    json_object_set_new(o, "failed", json_boolean(p->failed));
    json_object_set_new(o, "note", p->note[0] ? json_string(p->note)
                                              : json_null());
    json_object_set_new(o, "pragmas", str_or_null(p->pragmas));
    json_object_set_new(o, "schema", str_or_null(p->schema));
    json_object_set_new(o, "compared_with",
                        p->compare[0] ? json_string(p->compare) : json_null());
    json_object_set_new(o, "server",
                        p->server[0] ? json_string(p->server) : json_null());
    if (!p->ran) {
        json_object_set_new(o, "load", json_null());
        json_object_set_new(o, "scenarios", json_array());
        json_object_set_new(o, "side_by_side", json_array());
        return o;
    }
    json_object_set_new(o, "database", json_string(p->path));
    json_object_set_new(o, "database_bytes",
                        json_integer((json_int_t)p->bytes));
    json_object_set_new(
        o, "load",
        json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "events",
                  (json_int_t)p->load_events, "transactions",
                  (json_int_t)p->load_commits, "seconds", real(p->load_s),
                  "events_per_s", real(peer_load_rate(p)),
                  "evstore_events_per_s", real(evs_load_rate(r)), "ratio",
                  ratio(evs_load_rate(r), peer_load_rate(p)) < 0
                      ? json_null()
                      : real(ratio(evs_load_rate(r), peer_load_rate(p)))));
    json_t *sa = json_array(), *sbs = json_array();
    for (int k = 0; k < p->nsr; k++) {
        const scen_result *ps = &p->sr[k], *es = p->evs[k];
        json_t *js = j_scenario(r, ps);
        json_t *lvs = json_object_get(js, "levels");
        for (int l = 0; l < ps->n; l++) {
            const level_result *pl = &ps->lv[l];
            const level_result *el = level_find(es->lv, es->n, pl->threads);
            json_object_set_new(json_array_get(lvs, (size_t)l),
                                "busy_retries",
                                json_integer((json_int_t)ps->retries[l]));
            json_t *row = json_pack(
                "{s:s, s:i, s:o, s:o, s:o}", "scenario", ps->sc->name,
                "threads", pl->threads, "ops_per_s",
                j_pair(el, pl, lv_ops, 1), "p50_ms",
                j_pair(el, pl, lv_p50, 0), "p99_ms",
                j_pair(el, pl, lv_p99, 0));
            json_array_append_new(sbs, row);
        }
        json_array_append_new(sa, js);
    }
    json_object_set_new(o, "scenarios", sa);
    json_object_set_new(o, "side_by_side", sbs);
    return o;
}

static json_t *j_report(const suite_report *r)
{
    const bench_options *o = r->o;
    json_t *root = json_object();
    json_object_set_new(root, "tool", json_string("evs bench"));
    json_object_set_new(root, "date", json_string(r->date));
    json_object_set_new(root, "command", str_or_null(o->command));
    json_t *opt = json_object();
    json_object_set_new(opt, "quick", json_boolean(o->quick));
    json_object_set_new(opt, "events", json_integer((json_int_t)r->gen.events));
    json_object_set_new(opt, "seconds", real(r->seconds));
    json_object_set_new(opt, "warmup_s", real(r->warmup));
    json_object_set_new(opt, "seed", json_integer((json_int_t)o->seed));
    json_t *th = json_array();
    for (int i = 0; i < o->nthreads; i++)
        json_array_append_new(th, json_integer(o->threads[i]));
    json_object_set_new(opt, "threads", o->nthreads ? th : json_null());
    if (!o->nthreads)
        json_decref(th);
    json_object_set_new(opt, "db", str_or_null(o->db_uri));
    json_object_set_new(opt, "force", json_boolean(o->force));
    json_t *po = json_array();
    if (o->peers & BENCH_PEER_SQLITE)
        json_array_append_new(po, json_string("sqlite"));
    if (o->peers & BENCH_PEER_POSTGRES)
        json_array_append_new(po, json_string("postgres"));
    if (o->peers & BENCH_PEER_MESSAGEDB)
        json_array_append_new(po, json_string("messagedb"));
    json_object_set_new(opt, "peers", po);
    json_object_set_new(opt, "pg_uri", json_boolean(o->pg_uri != NULL));
    json_object_set_new(opt, "pg_throwaway", json_boolean(o->pg_throwaway));
    json_object_set_new(opt, "transport",
                        json_string(o->transport == BENCH_TRANSPORT_GRPC ? "grpc"
                                    : o->transport == BENCH_TRANSPORT_NONE
                                        ? "none"
                                        : "default"));
    json_object_set_new(root, "options", opt);
    json_object_set_new(root, "environment", j_environment(r));
    json_object_set_new(
        root, "durability",
        json_pack("{s:s, s:s}", "mode", "fdatasync",
                  "acknowledged", "an append returns after its log records "
                                  "were fdatasync'ed (group commit); the "
                                  "index is derived and caught up from "
                                  "the log after a crash"));
    json_object_set_new(root, "generator", j_generator(r));
    json_object_set_new(root, "index_rebuild", j_index_rebuild(r));
    json_t *sa = json_array();
    for (int i = 0; i < r->nsr; i++)
        json_array_append_new(sa, j_scenario(r, &r->sr[i]));
    json_object_set_new(root, "scenarios", sa);
    json_t *pa = json_array();
    for (int i = 0; i < BENCH_NPEERS; i++)
        json_array_append_new(pa, j_peer(r, &r->peers[i]));
    json_object_set_new(root, "peers", pa);
    json_object_set_new(root, "transport", transport_json(r));
    json_t *ta = json_array();
    for (int i = 0; i < r->ntr; i++)
        json_array_append_new(ta, j_target(&r->tr[i]));
    json_object_set_new(root, "targets", ta);
    json_object_set_new(
        root, "store_end",
        r->end_ok
            ? json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "events",
                        (json_int_t)r->end.events, "streams",
                        (json_int_t)r->end.streams, "tenants",
                        (json_int_t)r->end.tenants, "head_position",
                        (json_int_t)r->end.head_position, "log_bytes",
                        (json_int_t)r->end.log_bytes, "index_bytes",
                        (json_int_t)r->end.index_bytes, "segments",
                        (json_int_t)r->end.segments)
            : json_null());
    json_object_set_new(root, "plots",
                        json_pack("{s:b, s:s}", "drawn", r->plots_drawn,
                                  "note", r->plots_note));
    if (r->explain_run) {
        json_t *xa = json_array();
        for (int i = 0; i < r->nex; i++) {
            const explain_entry *x = &r->ex[i];
            json_array_append_new(
                xa, json_pack("{s:s, s:s, s:s, s:o, s:b, s:o, s:s}", "name",
                              x->name, "params", x->params, "index", x->index,
                              "used", x->used < 0 ? json_null()
                                                  : json_boolean(x->used),
                              "failed", x->failed, "execution_ms",
                              x->exec_ms < 0 ? json_null() : real(x->exec_ms),
                              "plan", x->plan));
        }
        json_object_set_new(root, "explain", xa);
        json_object_set_new(root, "analyzed_after_load",
                            json_boolean(r->analyzed));
        json_object_set_new(root, "explain_error",
                            r->explain_error[0]
                                ? json_string(r->explain_error)
                                : json_null());
    }
    json_object_set_new(root, "total_s", real(r->total_s));
    json_object_set_new(root, "exit_status", json_integer(r->status));
    return root;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

int report_write(const suite_report *r, const char *dir, char *err,
                 size_t errsize)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    FILE *f;

    snprintf(path, sizeof path, "%s/report.md", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "w"))) {
        snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    write_md(f, r, dir);
    if (fflush(f) != 0 || ferror(f) || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }

    json_t *root = j_report(r);
    snprintf(path, sizeof path, "%s/report.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (rc != 0 || rename(tmp, path) != 0) {
        snprintf(err, errsize, "%s: cannot write it", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Plots                                                               */
/* ------------------------------------------------------------------ */

/* Runs `gnuplot FILE` in dir, its messages appended to dir/gnuplot.log.
 * Returns 0, 127 when gnuplot cannot be run, else its exit status. */
static int run_gnuplot(const char *dir, const char *file)
{
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(126);
        FILE *log = fopen("gnuplot.log", "a");
        if (log) {
            dup2(fileno(log), 1);
            dup2(fileno(log), 2);
        }
        execlp("gnuplot", "gnuplot", file, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 127;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 126;
}

static int write_latency_plot(const char *dir, const scen_result *s,
                              int run)
{
    char path[PATH_MAX];
    FILE *f;
    const char *name = s->sc->name;

    snprintf(path, sizeof path, "%s/latency-%s.dat", dir, name);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "# latency of `%s` by percentile, one block per level\n"
               "# columns: percentile, milliseconds (nearest rank)\n",
            name);
    for (int i = 0; i < s->n; i++) {
        fprintf(f, "%s# %d threads\n", i ? "\n\n" : "", s->lv[i].threads);
        for (int k = 0; k < CURVE_POINTS && s->lv[i].lat.n; k++)
            fprintf(f, "%g %.6f\n", curve_pct[k], s->lv[i].curve_ms[k]);
    }
    fclose(f);

    snprintf(path, sizeof path, "%s/latency-%s.gp", dir, name);
    if (!(f = fopen(path, "w")))
        return -1;
    /* x: 1/(1 - p), so that the tail gets room (HdrHistogram's plot). */
    fprintf(f,
            "set terminal pngcairo size 900,540 noenhanced\n"
            "set output 'latency-%s.png'\n"
            "set title 'evs bench: %s, latency by percentile (warm-up "
            "excluded)'\n"
            "set logscale x\nset logscale y\n"
            /* gnuplot reads tic labels as formats: %% is a '%' */
            "set xtics ('0%%%%' 1, '50%%%%' 2, '90%%%%' 10, '99%%%%' 100, "
            "'99.9%%%%' 1000, '99.99%%%%' 10000)\n"
            "set xlabel 'percentile'\nset ylabel 'milliseconds'\n"
            "set grid\nset key top left\n"
            "plot ",
            name, name);
    int any = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->lv[i].lat.n)
            continue;
        fprintf(f, "%s'latency-%s.dat' index %d using "
                   "(($1 < 100) ? 1/(1-$1/100.0) : 1/0):2 with linespoints "
                   "pointsize 0.5 title '%d thread%s'",
                any ? ", \\\n     " : "", name, i, s->lv[i].threads,
                plural(s->lv[i].threads));
        any = 1;
    }
    if (!any)
        fprintf(f, "NaN notitle");
    fprintf(f, "\n");
    fclose(f);
    snprintf(path, sizeof path, "latency-%s.gp", name);
    return run ? run_gnuplot(dir, path) : 0;
}

static int write_throughput_plot(const char *dir, const suite_report *r,
                                 int run)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof path, "%s/throughput.dat", dir);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "# committed operations per second by threads, one block "
               "per scenario\n# columns: threads, ops/s\n");
    int block = 0;
    for (int i = 0; i < r->nsr; i++) {
        const scen_result *s = &r->sr[i];
        if (!s->n)
            continue;
        fprintf(f, "%s# %s\n", block++ ? "\n\n" : "", s->sc->name);
        for (int k = 0; k < s->n; k++)
            fprintf(f, "%d %.3f\n", s->lv[k].threads, s->lv[k].ops_per_s);
    }
    fclose(f);

    snprintf(path, sizeof path, "%s/throughput.gp", dir);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "set terminal pngcairo size 1000,600 noenhanced\n"
               "set output 'throughput.png'\n"
               "set title 'evs bench: committed operations per second by "
               "concurrency'\n"
               "set logscale x 2\nset logscale y\n"
               "set xlabel 'threads'\nset ylabel 'ops/s'\n"
               "set grid\nset key outside right\n"
               "plot ");
    block = 0;
    for (int i = 0; i < r->nsr; i++) {
        const scen_result *s = &r->sr[i];
        if (!s->n)
            continue;
        fprintf(f, "%s'throughput.dat' index %d using 1:($2 > 0 ? $2 : 1/0) "
                   "with linespoints title '%s'",
                block ? ", \\\n     " : "", block, s->sc->name);
        block++;
    }
    if (!block)
        fprintf(f, "NaN notitle");
    fprintf(f, "\n");
    fclose(f);
    return run ? run_gnuplot(dir, "throughput.gp") : 0;
}

/* The peers' plot: committed ops/s by threads of every shared scenario,
 * evstore's line solid and each peer's dashed in the same colour. Returns
 * -2 when no peer ran (nothing written), else as run_gnuplot. */
static int write_peers_plot(const char *dir, const suite_report *r, int run)
{
    char path[PATH_MAX];
    FILE *f;
    int block = 0, n = 0, plotted = 0;

    for (int i = 0; i < BENCH_NPEERS; i++)
        n += r->peers[i].ran ? r->peers[i].nsr : 0;
    if (!n)
        return -2;
    snprintf(path, sizeof path, "%s/throughput-peers.dat", dir);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "# committed operations per second by threads, shared "
               "scenarios: one block for evstore, then one per peer\n"
               "# columns: threads, ops/s\n");
    for (int i = 0; i < BENCH_NPEERS; i++) {
        const peer_result *p = &r->peers[i];
        for (int k = 0; p->ran && k < p->nsr; k++) {
            const scen_result *ss[2] = {p->evs[k], &p->sr[k]};
            for (int w = 0; w < 2; w++) {
                fprintf(f, "%s# %s %s\n", block++ ? "\n\n" : "",
                        w ? p->name : "evstore", ss[w]->sc->name);
                for (int l = 0; l < ss[w]->n; l++)
                    fprintf(f, "%d %.3f\n", ss[w]->lv[l].threads,
                            ss[w]->lv[l].ops_per_s);
                if (!ss[w]->n) /* an empty block still takes its index */
                    fprintf(f, "1 0\n");
            }
        }
    }
    fclose(f);

    snprintf(path, sizeof path, "%s/throughput-peers.gp", dir);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "set terminal pngcairo size 1000,600 noenhanced dashed\n"
               "set output 'throughput-peers.png'\n"
               "set title 'evs bench: evstore (solid) and its peers (dashed), "
               "committed operations per second by concurrency'\n"
               "set logscale x 2\nset logscale y\n"
               "set xlabel 'threads'\nset ylabel 'ops/s'\n"
               "set grid\nset key outside right\n"
               "plot ");
    block = 0;
    for (int i = 0; i < BENCH_NPEERS; i++) {
        const peer_result *p = &r->peers[i];
        for (int k = 0; p->ran && k < p->nsr; k++) {
            /* evstore's line once per scenario (an earlier peer that had
               the scenario drew it); each peer its own dash type */
            int drawn = 0;
            for (int j = 0; j < i; j++)
                for (int q = 0; r->peers[j].ran && q < r->peers[j].nsr; q++)
                    drawn |= strcmp(r->peers[j].sr[q].sc->name,
                                    p->sr[k].sc->name) == 0;
            for (int w = 0; w < 2; w++) {
                if (w == 0 && drawn) {
                    block++;
                    continue;
                }
                /* the colour of evstore's scenario, in every peer */
                fprintf(f, "%s'throughput-peers.dat' index %d using "
                           "1:($2 > 0 ? $2 : 1/0) with linespoints lc %d "
                           "dt %d title '%s %s'",
                        plotted++ ? ", \\\n     " : "", block,
                        (int)(p->evs[k] - r->sr) + 1, w ? 2 + i : 1,
                        w ? p->title : "evstore", p->sr[k].sc->name);
                block++;
            }
        }
    }
    fprintf(f, "\n");
    fclose(f);
    return run ? run_gnuplot(dir, "throughput-peers.gp") : 0;
}

void report_plots(suite_report *r, const char *dir, int plots)
{
    r->plots_drawn = 0;
    if (!plots) {
        snprintf(r->plots_note, sizeof r->plots_note,
                 "not drawn (--no-plots)");
        return;
    }
    /* The inputs are written even when gnuplot is missing, to be drawn
     * later. */
    int failed = 0, missing = 0;
    for (int i = 0; i < r->nsr; i++) {
        if (!r->sr[i].n)
            continue;
        int rc = write_latency_plot(dir, &r->sr[i], !missing);
        missing |= rc == 127;
        failed |= rc != 0;
    }
    int rc = write_throughput_plot(dir, r, !missing);
    missing |= rc == 127;
    failed |= rc != 0;
    rc = write_peers_plot(dir, r, !missing);
    if (rc != -2) {
        missing |= rc == 127;
        failed |= rc != 0;
    }
    if (missing)
        snprintf(r->plots_note, sizeof r->plots_note,
                 "not drawn: gnuplot is not installed (apt-get install "
                 "gnuplot-nox, then run `gnuplot FILE.gp` in %s: the .dat "
                 "and .gp inputs are there)",
                 dir);
    else if (failed)
        snprintf(r->plots_note, sizeof r->plots_note,
                 "gnuplot failed on some of them: see %s/gnuplot.log", dir);
    else
        snprintf(r->plots_note, sizeof r->plots_note, "drawn");
    r->plots_drawn = !failed && !missing;
    /* gnuplot.log only when gnuplot said something */
    char log[PATH_MAX];
    struct stat st;
    snprintf(log, sizeof log, "%s/gnuplot.log", dir);
    if (stat(log, &st) == 0 && st.st_size == 0)
        unlink(log);
}
