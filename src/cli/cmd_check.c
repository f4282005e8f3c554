/* ahilite check: verifies every stored chunk and every version of every image set in a data
 * directory (see ahl_meta_check) and reports each problem on its own line. Exit status 0 when
 * everything is sound, 1 when damage was found, 2 on a usage error or when the check cannot
 * run. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void print_problem(void *ctx, const char *line)
{
    (void)ctx;
    printf("damage: %s\n", line);
}

int ahl_cmd_check(int argc, char **argv)
{
    const char *dir = "./ahilite-data";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else {
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: ahilite check [--data-dir DIR]\n"
                    "  re-hashes every stored chunk and walks every version of every image set\n"
                    "  (default DIR ./ahilite-data). Exit status: 0 sound, 1 damage found (one\n"
                    "  'damage:' line each), 2 usage error or no database.\n");
            return help ? 0 : 2;
        }
    }
    char db[4096];
    struct stat st;
    snprintf(db, sizeof db, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    if (stat(db, &st) < 0) {
        fprintf(stderr, "ahilite check: no database at %s\n", db);
        return 2;
    }
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    struct ahl_meta_check_stats stats;
    int rc = ahl_store_open_sqlite(dir, 1, &s);
    if (rc == 0)
        rc = ahl_meta_open(s, NULL, &m);
    if (rc < 0) {
        fprintf(stderr, "ahilite check: cannot open %s: %s\n", db, ahl_strerror(rc));
        ahl_store_close(s);
        return rc == AHL_ECORRUPT ? 1 : 2;
    }
    rc = ahl_meta_check(m, print_problem, NULL, &stats);
    ahl_meta_close(m);
    ahl_store_close(s);
    printf("checked %llu chunks and %llu versions: %llu problem%s\n",
           (unsigned long long)stats.chunks, (unsigned long long)stats.versions,
           (unsigned long long)stats.problems, stats.problems == 1 ? "" : "s");
    if (rc == 0)
        return 0;
    if (rc == AHL_ECORRUPT) {
        if (!stats.problems)
            printf("damage: the database itself reports corruption\n");
        return 1;
    }
    fprintf(stderr, "ahilite check: the check could not finish: %s\n", ahl_strerror(rc));
    return 2;
}
