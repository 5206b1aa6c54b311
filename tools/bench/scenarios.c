/*
 * scenarios.c -- the list of `evs bench` scenarios (issue 6), in report
 * order, and the lookup by name. Each scenario lives in a scen_*.c file by
 * family; scen_util.c holds what they share.
 */
#include "scen_util.h"

#include <string.h>

const bench_scenario *const bench_scenarios[] = {
    &scen_bank,
    &scen_shop,
    &scen_batch,
    &scen_append1,
    &scen_append5,
    &scen_dcb_query,
    &scen_dcb_workflow,
    &scen_aggregate,
    &scen_aggregate_snapshot,
    &scen_stream_batches,
    &scen_tokens,
    &scen_catchup,
    &scen_mixed,
    &scen_scavenge,
    &scen_crypto,
    NULL
};

const bench_scenario *bench_scenario_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; bench_scenarios[i]; i++)
        if (strcmp(bench_scenarios[i]->name, name) == 0)
            return bench_scenarios[i];
    return NULL;
}
