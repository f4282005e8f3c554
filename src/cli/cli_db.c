/* Finding the database a storage command opens (cli.h). */
#include "cli/cli.h"

#include <stdio.h>
#include <sys/stat.h>

#include "store/store.h"
#include "base/banned.h"

int ahl_cli_find_db(const char *cmd, const char *dir, const char *database, char *db, size_t n)
{
    struct stat st;
    snprintf(db, n, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    if (database && *database) {
        snprintf(db, n, "the PostgreSQL database");
    } else if (stat(db, &st) < 0) {
        fprintf(stderr, "ahilite %s: no database at %s\n", cmd, db);
        return 2;
    }
    return 0;
}
