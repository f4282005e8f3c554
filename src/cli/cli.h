/* The ahilite command line: one function per subcommand, each taking the arguments after the
 * subcommand name (argv[0] is the subcommand) and returning the process exit status.
 * Exit status: 0 success, 1 the work failed (damage found, files failed), 2 usage error. */
#ifndef AHL_CLI_CLI_H
#define AHL_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ahl_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

/* The table of subcommands, ending with a zeroed entry. */
extern const struct ahl_cli_command ahl_cli_commands[];

/* The subcommands (cmd_<name>.c). */
int ahl_cmd_check(int argc, char **argv);
int ahl_cmd_diff(int argc, char **argv);
int ahl_cmd_dump(int argc, char **argv);
int ahl_cmd_export(int argc, char **argv);
int ahl_cmd_frames(int argc, char **argv);
int ahl_cmd_import(int argc, char **argv);
int ahl_cmd_inspect(int argc, char **argv);
int ahl_cmd_migrate(int argc, char **argv);
int ahl_cmd_serve(int argc, char **argv);
int ahl_cmd_gc(int argc, char **argv);

/* The store a command opens: writes its name for messages into db (DIR/ahilite.db, or "the
 * PostgreSQL database" when database is set) and returns 0, or prints "ahilite CMD: no database
 * at DIR/..." and returns 2 (the exit status) when the SQLite file does not exist (cli_db.c). */
int ahl_cli_find_db(const char *cmd, const char *dir, const char *database, char *db, size_t n);

/* ---- one collection (gc_pass.c), shared by `ahilite gc` and serve's background pass ---- */

struct ahl_meta;
struct ahl_store;
struct ahl_framestore;
struct ahl_err;

/* The default grace (docs/decisions.md#gc-grace): an unlisted frame younger than this may
 * belong to an import or STOW-RS whose version has not committed yet, and is kept. */
#define AHL_GC_GRACE_S (24 * 3600)

/* How long a deleted image set or data store stays visible as DELETED by default
 * (docs/decisions.md#tombstones); `serve --deleted-retention`, `gc --deleted-retention`. */
#define AHL_DELETED_RETENTION_DAYS 30

struct ahl_gc_opts {
    bool dry_run;      /* count, change nothing */
    int64_t grace_ms;  /* frames written less than this ago are kept */
    unsigned batch;    /* deletions per write transaction; 0: 512 */
    unsigned pause_ms; /* sleep between transactions (the background pass) */
    bool vacuum;       /* SQLite: VACUUM (converts an old database); PostgreSQL: VACUUM FULL */
    /* > 0: first remove the tombstones of resources deleted longer ago than this
     * (ahl_meta_tombstones_expire, docs/decisions.md#tombstones); 0: leave them */
    int64_t tombstone_retention_ms;
    /* polled between transactions: true stops the pass early (serve stopping); may be NULL */
    bool (*stop)(void *ctx);
    void *stop_ctx;
};

struct ahl_gc_report {
    uint64_t dead_sets, dead_versions, chunks, chunk_bytes;
    uint64_t frames, frame_bytes;   /* unlisted frames older than the grace */
    uint64_t young_frames;          /* unlisted frames within the grace: kept */
    uint64_t versions_swept, chunks_swept, chunk_bytes_swept, frames_swept, frame_bytes_swept;
    uint64_t rescued;               /* candidates a concurrent writer made reachable again */
    uint64_t tombstone_sets, tombstone_stores; /* expired tombstones removed */
};

/* Marks, then (unless dry_run) sweeps versions and chunks, then frames, then gives the space back
 * (ahl_store_compact). 0, or a negative AHL_E* with err saying why (AHL_ECORRUPT: a live version
 * needs a missing chunk, nothing collected). */
int ahl_gc_pass(struct ahl_meta *m, struct ahl_store *s, struct ahl_framestore *fs,
                const struct ahl_gc_opts *o, struct ahl_gc_report *r, struct ahl_err *err);

/* Prints "LABEL: V versions of S deleted image sets, C chunks (B bytes), F frames (B bytes)"
 * with what a pass found reclaimable (swept false) or removed (swept true). */
void ahl_gc_report_print(const char *label, const struct ahl_gc_report *r, bool swept);

/* serve's background collection: a thread running ahl_gc_pass every interval_s seconds (the
 * first one interval_s after the start) at a low rate (small transactions with pauses between
 * them), over its own frame store of the data directory or blob store. A failed pass is logged
 * and tried again at the next interval. At every interval it first removes the tombstones older
 * than tombstone_retention_ms (ahl_meta_tombstones_expire). */
#define AHL_GC_INTERVAL_S 3600
/* An interval with no version of a deleted set waiting skips the collection, but one runs at
 * least this often whatever the count. */
#define AHL_GC_FULL_EVERY_S (24 * 3600)
struct ahl_gc_background;
int ahl_gc_background_start(struct ahl_meta *m, struct ahl_store *s, const char *data_dir,
                            const char *blob_store, const char *s3_endpoint, unsigned interval_s,
                            int64_t grace_ms, int64_t tombstone_retention_ms,
                            struct ahl_gc_background **out, struct ahl_err *err);
/* Stops it, waiting for a pass under way to end its transaction. NULL is accepted. */
void ahl_gc_background_stop(struct ahl_gc_background *b);

#endif /* AHL_CLI_CLI_H */
