/*
 * cmd_backup.c -- `evs backup DEST`: an online backup of an embedded store
 * (evs_backup), made beside the application that writes it.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: evs backup DEST [--quiet]\n"
    "\n"
    "Copy the store into the directory DEST while it is in use: the store is\n"
    "opened read-only, so an application may go on writing it. The backup\n"
    "holds exactly the events acknowledged up to a position P, taken when\n"
    "the backup starts; it is itself a store (evs --db DEST read ...; evs\n"
    "--db DEST verify), and DEST/BACKUP records P, the source and the time.\n"
    "\n"
    "DEST must not exist (made beside it, then renamed), or be an empty\n"
    "directory such as a mount point (made in it; a killed run leaves\n"
    "DEST/backup.tmp, and the next run starts over), or hold an earlier\n"
    "backup of the same store: then the backup is incremental (complete log\n"
    "segments already there are kept, only what is new is copied), and an\n"
    "interrupted run leaves the earlier backup usable. A DEST holding another\n"
    "store's backup, or a backup opened and written to since, is refused.\n"
    "PostgreSQL stores: use pg_dump or pg_basebackup.\n"
    "\n"
    "Prints 'backup of STORE at position P: N segments copied (X bytes),\n"
    "M reused (Y bytes)' on standard output; progress on standard error\n"
    "when it is a terminal.\n"
    "\n"
    "Options:\n"
    "  --quiet         print nothing but errors\n"
    CLI_HELP_SHARED
    "\n"
    "Exit status: 0 ok, 1 error (I/O, disk full, damage), 2 usage error (bad\n"
    "DEST: not empty and not a backup, another store's backup; a PostgreSQL\n"
    "store), 4 DEST busy (open for writing, or another backup into it).\n";

enum { OPT_QUIET = 0x100 };

static const struct option options[] = {
    {"quiet", no_argument, NULL, OPT_QUIET},
    CLI_OPTIONS_END,
};

static const cli_cmd cmd = {"backup", help, options};

typedef struct progress {
    int on, shown;
    struct timespec last;
} progress;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress *p = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double since = (double)(now.tv_sec - p->last.tv_sec) +
                   (double)(now.tv_nsec - p->last.tv_nsec) / 1e9;
    if (!p->on || (p->shown && since < 0.25 && done < total))
        return;
    p->last = now;
    p->shown = 1;
    fprintf(stderr, "\rbackup: %.1f MiB of %.1f MiB (%d %%)   ", (double)done / 1048576.0,
            (double)total / 1048576.0, total ? (int)(done * 100 / total) : 0);
    fflush(stderr);
}

/* fsync a directory: 0 or -1 (errno set) */
static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int cmd_backup(cli_ctx *cx, int argc, char **argv)
{
    evs_backup_options bo = EVS_BACKUP_OPTIONS_INIT;
    evs_backup_result res;
    progress pr = {0, 0, {0, 0}};
    evs_db *db = NULL;
    int stop, opt, quiet = 0, status, rc;

    cli_getopt_start();
    while ((opt = cli_next_opt(&stop, cx, NULL, &cmd, argc, argv)) != -1) {
        if (opt == OPT_QUIET)
            quiet = 1;
    }
    if (stop >= 0)
        return stop;
    if (optind >= argc)
        return cli_usage("backup", "missing DEST (the directory to back up into)");
    if (optind + 1 < argc)
        return cli_usage("backup", "too many arguments: give one DEST");
    const char *dest = argv[optind];
    if (!*dest)
        return cli_usage("backup", "DEST is empty");

    if ((status = cli_open(&db, cx, EVS_OPEN_READONLY)) != 0)
        return status;
    pr.on = !quiet && isatty(STDERR_FILENO);
    bo.progress = on_progress;
    bo.progress_ctx = &pr;
    rc = evs_backup(&res, db, dest, &bo);
    if (pr.shown)
        fputc('\n', stderr);
    if (rc < 0)
        return cli_close(db, cli_lib_err(rc, NULL));
    if (!quiet)
        printf("backup of %s at position %" PRIu64 ": %" PRIu64 " segments copied (%" PRIu64
               " bytes with the index and snapshots), %" PRIu64 " reused (%" PRIu64
               " bytes)\n", cx->db_uri, res.position, res.segments_copied,
               res.bytes_copied, res.segments_reused, res.bytes_reused);
    status = fflush(stdout) != 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    return cli_close(db, status);
}

/* ---- evs restore ------------------------------------------------------------ */

static const char restore_help[] =
    "usage: evs restore BACKUP DIR [--quiet]\n"
    "\n"
    "Make DIR a store holding what the backup BACKUP (made by evs backup)\n"
    "holds: its events, its index and its snapshots, ready to be opened\n"
    "(no index rebuild). DIR must not exist, or be an empty directory. BACKUP\n"
    "is opened read-only and its events are not changed (it stays a backup:\n"
    "later evs backup runs into it go on); as any read-only open, it first\n"
    "rebuilds BACKUP's index in place when that index cannot be trusted\n"
    "(after an interrupted incremental backup).\n"
    "A backup also opens where it is (evs --db BACKUP ...); restoring copies\n"
    "it, so that the backup stays as it was. Copying the directory with cp -a\n"
    "works too, but the copy then rebuilds its index when first opened and\n"
    "starts without snapshots (a copy of a store is recovered as a copy).\n"
    "\n"
    "Prints 'restored BACKUP at position P into DIR'.\n"
    "\n"
    "Options:\n"
    "  --quiet         print nothing but errors\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 ok, 1 error (I/O, disk full, damage), 2 usage error (DIR\n"
    "not empty, BACKUP not a store).\n";

static const cli_cmd restore_cmd = {"restore", restore_help, options};

int cmd_restore(cli_ctx *cx, int argc, char **argv)
{
    evs_backup_options bo = EVS_BACKUP_OPTIONS_INIT;
    evs_backup_result res;
    progress pr = {0, 0, {0, 0}};
    evs_db *db = NULL;
    int stop, opt, quiet = 0, status, rc;
    char path[4200];
    struct stat st;

    cli_getopt_start();
    while ((opt = cli_next_opt(&stop, cx, NULL, &restore_cmd, argc, argv)) != -1) {
        if (opt == OPT_QUIET)
            quiet = 1;
    }
    if (stop >= 0)
        return stop;
    if (argc - optind != 2)
        return cli_usage("restore", "give BACKUP (a directory made by evs backup) and DIR "
                         "(where the store should be)");
    const char *from = argv[optind], *to = argv[optind + 1];
    if (!*from || !*to)
        return cli_usage("restore", "BACKUP and DIR must not be empty");
    /* a new store only: never into a store or a backup */
    if (lstat(to, &st) == 0) {
        DIR *d = S_ISDIR(st.st_mode) ? opendir(to) : NULL;
        int entries = d ? 0 : 1;
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                entries++;
        if (d)
            closedir(d);
        if (entries)
            return cli_usage("restore", "%s exists and is not an empty directory; restore "
                             "into a new or empty directory", to);
    }
    cli_ctx rcx = *cx;
    rcx.db_uri = from;
    if ((status = cli_open(&db, &rcx, EVS_OPEN_READONLY)) != 0)
        return status;
    pr.on = !quiet && isatty(STDERR_FILENO);
    bo.progress = on_progress;
    bo.progress_ctx = &pr;
    rc = evs_backup(&res, db, to, &bo);
    if (pr.shown)
        fputc('\n', stderr);
    if (rc < 0)
        return cli_close(db, cli_lib_err(rc, NULL));
    /* DIR is a store now, not a backup of one */
    snprintf(path, sizeof(path), "%s/BACKUP", to);
    if (unlink(path) != 0 || fsync_dir(to) != 0) {
        cli_err("restore: %s is restored, but removing its BACKUP file failed: %s", to,
                strerror(errno));
        return cli_close(db, CLI_EXIT_FAIL);
    }
    if (!quiet)
        printf("restored %s at position %" PRIu64 " into %s\n", from, res.position, to);
    status = fflush(stdout) != 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    return cli_close(db, status);
}
