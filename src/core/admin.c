/*
 * admin.c -- administration calls: evs_backup's argument checks, then
 * dispatch to the backend (the embedded one in src/embedded/backup.c).
 */
#include "core/front.h"
#include "util/util.h"

#include <string.h>

int evs_backup(evs_backup_result *out, evs_db *db, const char *dest_dir,
               const evs_backup_options *opts)
{
    evs_backup_options o = EVS_BACKUP_OPTIONS_INIT;
    evs_backup_result ignored;
    evs__clear_error();
    if (!out)
        out = &ignored;
    memset(out, 0, sizeof(*out));
    if (!db)
        return evs__err(EVS_EINVAL, "evs_backup: db is NULL");
    if (!dest_dir || !*dest_dir)
        return evs__err(EVS_EINVAL, "evs_backup: no destination directory; give a new or "
                        "empty directory, or an earlier backup of this store");
    if (strlen(dest_dir) > 3000)
        return evs__err(EVS_EINVAL, "evs_backup: destination path is too long (%zu bytes, "
                        "at most 3000)", strlen(dest_dir));
    if (opts) {
        if (opts->version != EVS_BACKUP_OPTIONS_VERSION)
            return evs__err(EVS_EINVAL, "evs_backup: options version %u, this library "
                            "knows %d (initialise with EVS_BACKUP_OPTIONS_INIT)",
                            opts->version, EVS_BACKUP_OPTIONS_VERSION);
        if (opts->flags != 0)
            return evs__err(EVS_EINVAL, "evs_backup: unknown flags 0x%x (none are defined; "
                            "pass 0)", opts->flags);
        o = *opts;
    }
    return db->ops->backup(out, db, dest_dir, &o);
}
