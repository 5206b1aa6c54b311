/* The README's example: append to a stream, read it back. */
#include <evstore.h>
#include <stdio.h>

int main(void)
{
    evs_db *db;
    if (evs_open(&db, "quickstart-data", NULL) != 0) {
        fprintf(stderr, "open: %s\n", evs_last_error());
        return 1;
    }
    evs_event_data ev = {.type = "Deposited", .data = "{\"amount\":10}", .data_len = 13};
    evs_append_result r;
    if (evs_append(&r, db, NULL, "account-42", EVS_ANY, &ev, 1) != 0)
        fprintf(stderr, "append: %s\n", evs_last_error());

    evs_iter *it;
    const evs_event *e;
    evs_read_stream(&it, db, NULL, "account-42", 0, EVS_FORWARD, 0);
    while (evs_iter_next(&e, it) == 0)
        printf("%llu %s v%lld %s\n", (unsigned long long)e->position, e->type,
               (long long)e->stream_version, (const char *)e->data);
    evs_iter_free(it);
    return evs_close(db);
}
