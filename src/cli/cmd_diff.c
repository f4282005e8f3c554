/* ahilite diff: prints the changes between two versions of an image set as JSON
 * (ahl_meta_diff, docs/metadata.md#version-diff). Reads only what differs. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ahilite diff [OPTIONS]\n\n"
               "Prints, as JSON, what changed from one version of an image set to another: per\n"
               "level (Patient, Study, each series and instance by UID) the attributes added,\n"
               "removed and changed (old and new value), the series and instances added or\n"
               "removed, and the UIDs re-keyed (same content under a new UID). The shape is in\n"
               "docs/metadata.md (Version diff). Only the parts that differ are read.\n\n"
               "options:\n"
               "  --data-dir DIR        the data directory (default ./ahilite-data)\n"
               "  --database URI        the PostgreSQL database the server keeps its metadata\n"
               "                        in (postgresql://...; default: SQLite in DIR)\n"
               "  --datastore-id ID     the data store (required)\n"
               "  --image-set-id ID     the image set (required)\n"
               "  --from N              the earlier version (required)\n"
               "  --to N                the later version (required)\n"
               "  --help                this text\n\n"
               "Exit status: 0 printed, 1 no such data store, image set or version (or the\n"
               "store failed), 2 usage error or no database.\n");
}

static int parse_version(const char *opt, const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(v, &end, 10);
    if (errno || *end || !*v || v[0] == '-' || *out == 0) {
        fprintf(stderr, "ahilite diff: %s expects a version number (1, 2, ...)\n", opt);
        return -1;
    }
    return 0;
}

int ahl_cmd_diff(int argc, char **argv)
{
    const char *dir = "./ahilite-data", *ds = NULL, *set = NULL, *database = NULL;
    uint64_t from = 0, to = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data-dir") && has_value) {
            dir = argv[++i];
        } else if (!strcmp(a, "--database") && has_value) {
            database = argv[++i];
        } else if (!strcmp(a, "--datastore-id") && has_value) {
            ds = argv[++i];
        } else if (!strcmp(a, "--image-set-id") && has_value) {
            set = argv[++i];
        } else if (!strcmp(a, "--from") && has_value) {
            if (parse_version(a, argv[++i], &from) < 0)
                return 2;
        } else if (!strcmp(a, "--to") && has_value) {
            if (parse_version(a, argv[++i], &to) < 0)
                return 2;
        } else {
            fprintf(stderr, "ahilite diff: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!ds || !set || !from || !to) {
        fprintf(stderr, "ahilite diff: --datastore-id, --image-set-id, --from and --to are "
                        "required\n\n");
        usage(stderr);
        return 2;
    }

    char db[4096];
    struct ahl_err err;
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    json_t *d = NULL;
    int status = 1, rc;
    ahl_err_clear(&err);
    if (ahl_cli_find_db("diff", dir, database, db, sizeof db))
        return 2;
    if ((rc = ahl_store_open(database, dir, 1, &s)) < 0) {
        fprintf(stderr, "ahilite diff: cannot open %s: %s\n", db, ahl_strerror(rc));
        return 2;
    }
    if ((rc = ahl_meta_open(s, NULL, &m)) < 0) {
        fprintf(stderr, "ahilite diff: cannot open the metadata engine: %s\n", ahl_strerror(rc));
        goto out;
    }
    if (ahl_meta_diff(m, ds, set, from, to, &d, &err) < 0) {
        fprintf(stderr, "ahilite diff: %s\n", err.msg);
        goto out;
    }
    char *text = json_dumps(d, JSON_INDENT(2));
    if (!text) {
        fprintf(stderr, "ahilite diff: out of memory\n");
        goto out;
    }
    printf("%s\n", text);
    free(text);
    status = fflush(stdout) == 0 ? 0 : 1;
out:
    json_decref(d);
    ahl_meta_close(m);
    ahl_store_close(s);
    return status;
}
