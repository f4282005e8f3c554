/* ahilite check: looks for damage in a data directory, reading only, and reports each problem on
 * its own line:
 *   1. SQLite's own check of the database file (ahl_store_sqlite_integrity_check): every page,
 *      b-tree and index entry (not on PostgreSQL, whose pages are the server's business: the
 *      check says it skipped this step);
 *   2. every stored chunk re-hashed and every version of every image set walked
 * (ahl_meta_check_with), including the frame-index row of every frame a version lists;
 *   3. through the frame verifier below, every frame a version lists: its file under
 *      DATA_DIR/frames is present, a regular file reached without following a link, of its
 *      FrameSizeInBytes, and holds the bytes its id (a content hash) names; with --blob-store,
 *      its object in the bucket is present, of that size, and holds those bytes (one GetObject,
 *      hashed as it arrives).
 * Exit status 0 when everything is sound, 1 when damage was found, 2 on a usage error or when the
 * check cannot run. */
#include "cli/cli.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "blob/framestore.h"
#include "frames/frames.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void print_problem(void *ctx, const char *line)
{
    (void)ctx;
    printf("damage: %s\n", line);
}

/* SQLite's report may hold several lines, under a "*** in database main ***" heading: one
 * damage line each. */
static int print_db_problem(void *ctx, const char *text)
{
    (void)ctx;
    while (*text) {
        size_t n = strcspn(text, "\n");
        if (n && strncmp(text, "*** in database ", 16) != 0)
            printf("damage: database: %.*s\n", (int)n, text);
        text += n + (text[n] == '\n');
    }
    return 0;
}

/* The frame verifier handed to the engine's check: the problem names the file. */
static int verify_frame(void *ctx, const struct ahl_meta_frame_ref *ref, char *problem, size_t cap)
{
    struct ahl_framestore *fs = ctx;
    struct ahl_err err;
    char path[sizeof fs->root + 64];
    ahl_err_clear(&err);
    int rc = ahl_framestore_check(fs, ref->frame_id, ref->stored_transfer_syntax, ref->size, &err);
    if (rc == AHL_EINVAL) {
        snprintf(problem, cap, "its ID is not a frame id the frame store can hold");
        return AHL_ECORRUPT;
    }
    if (rc == 0 || (rc != AHL_ENOTFOUND && rc != AHL_ECORRUPT))
        return rc;
    ahl_framestore_path(fs, ref->frame_id, path, sizeof path);
    const char *what = fs->s3 ? "object" : "file";
    if (rc == AHL_ENOTFOUND)
        snprintf(problem, cap, "its %s %s is missing", what, path);
    else
        snprintf(problem, cap, "%s (%s %s)", err.msg, what, path);
    return rc;
}

/* The collector's dry run (gc_pass.c): versions of deleted sets, chunks and frames (older than
 * the default grace) that no live version reaches. */
static void print_reclaimable(struct ahl_meta *m, struct ahl_store *s, struct ahl_framestore *fs)
{
    struct ahl_gc_opts o = {.dry_run = true, .grace_ms = (int64_t)AHL_GC_GRACE_S * 1000};
    struct ahl_gc_report r;
    struct ahl_err err;
    ahl_err_clear(&err);
    if (ahl_gc_pass(m, s, fs, &o, &r, &err) < 0) {
        fprintf(stderr, "ahilite check: could not count what `ahilite gc` would reclaim: %s\n",
                err.msg);
        return;
    }
    if (r.dead_versions || r.chunks || r.frames)
        ahl_gc_report_print("reclaimable (not damage; `ahilite gc` removes it)", &r, false);
}

int ahl_cmd_check(int argc, char **argv)
{
    const char *dir = "./ahilite-data", *blob_store = NULL, *s3_endpoint = NULL, *database = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--blob-store") && i + 1 < argc) {
            blob_store = argv[++i];
        } else if (!strcmp(argv[i], "--s3-endpoint") && i + 1 < argc) {
            s3_endpoint = argv[++i];
        } else if (!strcmp(argv[i], "--database") && i + 1 < argc) {
            database = argv[++i];
        } else if (!strncmp(argv[i], "--database=", 11)) {
            database = argv[i] + 11;
        } else {
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: ahilite check [--data-dir DIR] [--database URI]\n"
                    "                     [--blob-store s3://BUCKET/PREFIX --s3-endpoint URL]\n"
                    "  runs SQLite's integrity check, re-hashes every stored chunk, walks every\n"
                    "  version of every image set, and checks every frame a version lists: its\n"
                    "  frame-index row, and its file's size and content hash (bulk data\n"
                    "  objects: size and hash) (default DIR\n"
                    "  ./ahilite-data). Reads only. Exit status: 0 sound, 1 damage found (one\n"
                    "  'damage:' line each), 2 usage error or no database. What deleted image\n"
                    "  sets left that `ahilite gc` would remove is counted on a 'reclaimable'\n"
                    "  line: not damage, and the exit status does not change for it.\n"
                    "  --database URI  check the PostgreSQL database the server was started\n"
                    "                  with (postgresql://...); SQLite's integrity check is\n"
                    "                  skipped, everything else runs.\n");
            return help ? 0 : 2;
        }
    }
    char db[4096];
    struct stat st;
    struct ahl_err err;
    bool pg = database && *database;
    if (pg && !ahl_store_is_postgres(database)) {
        fprintf(stderr, "ahilite check: --database takes a PostgreSQL URI (postgresql://...)\n");
        return 2;
    }
    snprintf(db, sizeof db, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    if (pg) {
        snprintf(db, sizeof db, "the PostgreSQL database");
    } else if (stat(db, &st) < 0) {
        fprintf(stderr, "ahilite check: no database at %s\n", db);
        return 2;
    }
    struct ahl_framestore fs;
    if (ahl_framestore_open_dir(&fs, dir, blob_store, s3_endpoint, true, &err) < 0) {
        fprintf(stderr, "ahilite check: %s\n", err.msg);
        return 2;
    }
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    struct ahl_meta_check_stats stats;
    unsigned db_problems = 0;
    memset(&stats, 0, sizeof stats);
    int rc = ahl_store_open(database, dir, 1, &s);
    if (rc < 0) {
        fprintf(stderr, "ahilite check: cannot open %s: %s\n", db, ahl_strerror(rc));
        if (rc == AHL_ECORRUPT)
            printf("damage: database: %s cannot be opened: %s\n", db, ahl_strerror(rc));
        ahl_framestore_close(&fs);
        return rc == AHL_ECORRUPT ? 1 : 2;
    }
    /* SQLite's check first: the engine's walk may stop on a damaged page it reports. */
    int db_rc = 0;
    if (pg)
        printf("skipped SQLite's integrity check: the database is PostgreSQL\n");
    else
        db_rc = ahl_store_sqlite_integrity_check(s, false, print_db_problem, NULL, &db_problems);
    if (db_rc < 0 && db_rc != AHL_ECORRUPT)
        fprintf(stderr, "ahilite check: SQLite's integrity check could not run: %s\n",
                ahl_strerror(db_rc));
    rc = ahl_meta_open(s, NULL, &m);
    if (rc == 0) {
        struct ahl_meta_check_opts opts = {.verify_frame = verify_frame, .verify_ctx = &fs};
        rc = ahl_meta_check_with(m, &opts, print_problem, NULL, &stats);
    }
    /* What deleted image sets left for the collector is not damage: counted, never failing. */
    if (rc == 0)
        print_reclaimable(m, s, &fs);
    ahl_meta_close(m);
    ahl_store_close(s);
    ahl_framestore_close(&fs);
    uint64_t problems = stats.problems + db_problems;
    printf("checked the database, %llu chunks, %llu versions and %llu frame%s: %llu problem%s\n",
           (unsigned long long)stats.chunks, (unsigned long long)stats.versions,
           (unsigned long long)stats.frames, stats.frames == 1 ? "" : "s",
           (unsigned long long)problems, problems == 1 ? "" : "s");
    if (rc < 0 && rc != AHL_ECORRUPT)
        fprintf(stderr, "ahilite check: the check could not finish: %s\n", ahl_strerror(rc));
    if (rc == AHL_ECORRUPT || db_rc == AHL_ECORRUPT) {
        if (!problems)
            printf("damage: the database itself reports corruption\n");
        return 1;
    }
    return rc == 0 && db_rc == 0 ? 0 : 2;
}
