/*
 * The DCB specification's first example (dcb.events): usernames must be
 * unique, with no "usernames" stream to lock. A claim reads the events
 * tagged with the username, decides, and appends only if nothing new
 * matched since its read (the append condition).
 *
 *   build/example-dcb-username [STORE_DIR]     (default: dcb-example-data)
 *
 * Exits 0 when the second claim of "ada" was refused (the first one
 * succeeds on a fresh store, and is refused too when an earlier run
 * claimed the name), 1 otherwise.
 */
#include <evstore.h>
#include <stdio.h>
#include <string.h>

/* Claim `name` for `account`: 0 claimed, 1 taken, -1 error. */
static int claim(evs_db *db, const char *name, const char *account)
{
    char tag[300], data[400];
    snprintf(tag, sizeof(tag), "username:%s", name);
    snprintf(data, sizeof(data), "{\"username\":\"%s\",\"account\":\"%s\"}", name, account);

    /* 1. read the boundary: every event that claimed or released the name */
    const char *types[] = {"UsernameClaimed", "UsernameReleased"};
    const char *tags[] = {tag};
    evs_query_item item = {.types = types, .ntypes = 2, .tags = tags, .ntags = 1};
    evs_query query = {.items = &item, .nitems = 1};
    evs_iter *it;
    const evs_event *e;
    if (evs_read_query(&it, db, NULL, &query, 0, EVS_FORWARD, 0) != 0)
        return -1;
    int taken = 0;
    while (evs_iter_next(&e, it) == 0) /* 2. fold: is it taken now? */
        taken = strcmp(e->type, "UsernameClaimed") == 0;
    uint64_t marker;
    evs_iter_marker(&marker, it);
    evs_iter_free(it);
    if (taken)
        return 1;

    /* 3. append, unless someone claimed or released it after our read */
    evs_event_data ev = {.type = "UsernameClaimed", .data = data, .data_len = strlen(data),
                         .tags = tags, .ntags = 1};
    evs_append_condition cond = {.fail_if_events_match = query, .after = marker};
    uint64_t conflict;
    int rc = evs_dcb_append(NULL, &conflict, db, NULL, &ev, 1, &cond);
    if (rc == EVS_ECONFLICT) /* lost a race: the caller may retry from 1. */
        return 1;
    return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    evs_db *db;
    if (evs_open(&db, argc > 1 ? argv[1] : "dcb-example-data", NULL) != 0) {
        fprintf(stderr, "open: %s\n", evs_last_error());
        return 1;
    }
    int first = claim(db, "ada", "account-1");
    int second = claim(db, "ada", "account-2");
    printf("first claim of ada: %s\nsecond claim of ada: %s\n",
           first == 0 ? "claimed" : first == 1 ? "taken" : evs_last_error(),
           second == 0 ? "claimed" : second == 1 ? "taken" : evs_last_error());
    evs_close(db);
    /* On a store where ada was claimed by an earlier run, both are "taken". */
    return (first == 0 || first == 1) && second == 1 ? 0 : 1;
}
