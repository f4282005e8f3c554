/* ahilite gc: reports what deleted image sets still hold (their versions, the chunks and frames
 * no live version reaches) and removes it (gc_pass.c), then gives the space back. Safe beside a
 * running server and imports on the same store (meta.h, "garbage collection"). Exit status 0
 * done (or, with --dry-run, counted), 1 the collection failed, 2 usage error or no database. */
#include "cli/cli.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "blob/framestore.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ahilite gc [--dry-run] [--data-dir DIR] [--database URI]\n"
            "                  [--blob-store s3://BUCKET/PREFIX --s3-endpoint URL]\n"
            "                  [--grace SECONDS] [--batch N] [--pause MS] [--vacuum]\n"
            "                  [--deleted-retention DAYS]\n"
            "  removes the image sets and data stores deleted more than the retention ago\n"
            "  (until then they show as DELETED), the versions of deleted image sets, every\n"
            "  metadata chunk no version of a live image set reaches, and every frame (file, or\n"
            "  object under the --blob-store prefix, which must be this store's alone) no live\n"
            "  version lists that was written more than the grace ago; chunks and frames other\n"
            "  sets share stay. Then gives the space back (SQLite: incremental vacuum\n"
            "  and a WAL truncation; PostgreSQL: VACUUM). Safe while a server and imports use\n"
            "  the store. Prints what was reclaimable and what was reclaimed (default DIR\n"
            "  ./ahilite-data).\n"
            "  --dry-run        count only; change nothing\n"
            "  --grace SECONDS  keep unlisted frames written less than this ago: they may\n"
            "                   belong to an import not yet committed (default %d, a day)\n"
            "  --deleted-retention DAYS\n"
            "                   how long deleted image sets and data stores stay visible\n"
            "                   as DELETED; 0: remove them all now (default %d, as serve)\n"
            "  --batch N        deletions per write transaction (default 512): the write\n"
            "                   lock is held for one batch at a time\n"
            "  --pause MS       sleep this long after the mark and between transactions,\n"
            "                   to spread the work (default 0)\n"
            "  --vacuum         rebuild the database (SQLite: VACUUM, which also turns on\n"
            "                   incremental vacuum for a database made before it; PostgreSQL:\n"
            "                   VACUUM FULL, which returns space to the operating system but\n"
            "                   locks the tables while it runs)\n"
            "  Exit status: 0 done, 1 the collection failed, 2 usage error or no database.\n",
            AHL_GC_GRACE_S, AHL_DELETED_RETENTION_DAYS);
}

int ahl_cmd_gc(int argc, char **argv)
{
    const char *dir = "./ahilite-data", *blob_store = NULL, *s3_endpoint = NULL, *database = NULL;
    struct ahl_gc_opts o = {.grace_ms = (int64_t)AHL_GC_GRACE_S * 1000,
                            .tombstone_retention_ms = (int64_t)AHL_DELETED_RETENTION_DAYS * 86400000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dry-run")) {
            o.dry_run = true;
        } else if (!strcmp(a, "--vacuum")) {
            o.vacuum = true;
        } else if (!strcmp(a, "--data-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(a, "--blob-store") && i + 1 < argc) {
            blob_store = argv[++i];
        } else if (!strcmp(a, "--s3-endpoint") && i + 1 < argc) {
            s3_endpoint = argv[++i];
        } else if (!strcmp(a, "--database") && i + 1 < argc) {
            database = argv[++i];
        } else if (!strncmp(a, "--database=", 11)) {
            database = a + 11;
        } else if (!strcmp(a, "--batch") && i + 1 < argc) {
            char *end;
            const char *v = argv[++i];
            unsigned long n = strtoul(v, &end, 10);
            if (*end || !*v || *v == '-' || n < 1 || n > 100000) {
                fprintf(stderr, "ahilite gc: --batch takes a number from 1 to 100000\n");
                return 2;
            }
            o.batch = (unsigned)n;
        } else if (!strcmp(a, "--pause") && i + 1 < argc) {
            char *end;
            const char *v = argv[++i];
            unsigned long n = strtoul(v, &end, 10);
            if (*end || !*v || *v == '-' || n > 60000) {
                fprintf(stderr, "ahilite gc: --pause takes milliseconds from 0 to 60000\n");
                return 2;
            }
            o.pause_ms = (unsigned)n;
        } else if (!strcmp(a, "--grace") && i + 1 < argc) {
            char *end;
            const char *v = argv[++i];
            unsigned long long n = strtoull(v, &end, 10);
            if (*end || !*v || *v == '-' || n > 100ULL * 365 * 24 * 3600) {
                fprintf(stderr, "ahilite gc: --grace takes a number of seconds, not '%s'\n", v);
                return 2;
            }
            o.grace_ms = (int64_t)n * 1000;
        } else if (!strcmp(a, "--deleted-retention") && i + 1 < argc) {
            char *end;
            const char *v = argv[++i];
            unsigned long n = strtoul(v, &end, 10);
            if (*end || !*v || *v == '-' || n > 36500) {
                fprintf(stderr, "ahilite gc: --deleted-retention takes days from 0 to 36500, not "
                                "'%s'\n",
                        v);
                return 2;
            }
            /* 0 days: everything deleted before now (the expiry keeps only what is younger). */
            o.tombstone_retention_ms = n ? (int64_t)n * 86400000 : 1;
        } else {
            fprintf(stderr, "ahilite gc: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    bool pg = database && *database;
    if (pg && !ahl_store_is_postgres(database)) {
        fprintf(stderr, "ahilite gc: --database takes a PostgreSQL URI (postgresql://...)\n");
        return 2;
    }
    if (blob_store && !s3_endpoint) {
        fprintf(stderr, "ahilite gc: --blob-store needs --s3-endpoint URL\n");
        return 2;
    }
    char db[4096];
    struct stat st;
    snprintf(db, sizeof db, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    if (!pg && stat(db, &st) < 0) {
        fprintf(stderr, "ahilite gc: no database at %s\n", db);
        return 2;
    }
    struct ahl_err err;
    struct ahl_framestore fs;
    if (ahl_framestore_open_dir(&fs, dir, blob_store, s3_endpoint, false, &err) < 0) {
        fprintf(stderr, "ahilite gc: %s\n", err.msg);
        return 2;
    }
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    struct ahl_gc_report r;
    memset(&r, 0, sizeof r);
    int rc = ahl_store_open(database, dir, 1, &s);
    if (rc < 0) {
        fprintf(stderr, "ahilite gc: cannot open %s: %s\n", pg ? "the PostgreSQL database" : db,
                ahl_strerror(rc));
        ahl_framestore_close(&fs);
        return 2;
    }
    ahl_err_clear(&err);
    if ((rc = ahl_meta_open(s, NULL, &m)) == 0)
        rc = ahl_gc_pass(m, s, &fs, &o, &r, &err);
    else
        ahl_fail(&err, rc, "cannot open the metadata engine: %s", ahl_strerror(rc));
    if (rc == 0 || r.chunks || r.dead_versions || r.frames) {
        ahl_gc_report_print("reclaimable", &r, false);
        if (r.young_frames)
            printf("kept: %llu unlisted frame%s written within the grace\n",
                   (unsigned long long)r.young_frames, r.young_frames == 1 ? "" : "s");
    }
    if (!o.dry_run && rc == 0) {
        printf("expired: %llu deleted image set%s and %llu deleted data store%s past the "
               "retention\n",
               (unsigned long long)r.tombstone_sets, r.tombstone_sets == 1 ? "" : "s",
               (unsigned long long)r.tombstone_stores, r.tombstone_stores == 1 ? "" : "s");
        ahl_gc_report_print("reclaimed", &r, true);
    }
    if (rc < 0)
        fprintf(stderr, "ahilite gc: %s\n", err.msg[0] ? err.msg : ahl_strerror(rc));
    ahl_meta_close(m);
    ahl_store_close(s);
    ahl_framestore_close(&fs);
    return rc < 0 ? 1 : 0;
}
