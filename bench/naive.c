/* The naive baseline's store: whole documents, gzip'd, one row per version in a SQLite file of
 * its own (see naive.h). It opens SQLite itself, as a plain versioned JSON store would, and runs
 * it as the product's store runs its own (WAL, synchronous=NORMAL, the same page cache), so the
 * comparison is of the data layout, not of the database settings. */
#include "naive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <zlib.h>

#include "base/buf.h"
#include "json/json.h"
#include "base/banned.h"

struct ahl__naive {
    sqlite3 *db;
    sqlite3_stmt *latest, *insert, *bytes;
    int64_t version; /* the latest stored version */
};

static int fail(struct ahl__naive *n, const char *what)
{
    fprintf(stderr, "ahilite-bench update: naive store: %s: %s\n", what, sqlite3_errmsg(n->db));
    return -1;
}

int ahl__naive_open(const char *dir, struct ahl__naive **out)
{
    char path[4096];
    struct ahl__naive *n = calloc(1, sizeof *n);
    *out = NULL;
    if (!n)
        return -1;
    snprintf(path, sizeof path, "%s/naive.db", dir);
    if (sqlite3_open_v2(path, &n->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(n->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     " PRAGMA cache_size=-65536;"
                     " CREATE TABLE naive_versions(version INTEGER PRIMARY KEY,"
                     " gzip BLOB NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(n->db, "SELECT gzip FROM naive_versions ORDER BY version DESC LIMIT 1",
                           -1, &n->latest, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(n->db, "INSERT INTO naive_versions(version, gzip) VALUES(?, ?)", -1,
                           &n->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(n->db, "SELECT coalesce(sum(length(gzip)), 0) FROM naive_versions", -1,
                           &n->bytes, NULL) != SQLITE_OK) {
        fail(n, path);
        ahl__naive_close(n);
        return -1;
    }
    *out = n;
    return 0;
}

void ahl__naive_close(struct ahl__naive *n)
{
    if (!n)
        return;
    sqlite3_finalize(n->latest);
    sqlite3_finalize(n->insert);
    sqlite3_finalize(n->bytes);
    sqlite3_close(n->db);
    free(n);
}

/* The whole document's gzip (level 6, as GetImageSetMetadata's body would be). */
static int gzip_whole(const char *p, size_t n, struct ahl_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, n) + 64;
    if (ahl_buf_reserve(out, cap) < 0) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    out->len = cap - z.avail_out;
    deflateEnd(&z);
    return zr == Z_STREAM_END ? 0 : -1;
}

static int gunzip_whole(const void *p, size_t n, struct ahl_buf *out)
{
    z_stream z;
    unsigned char tmp[1 << 16];
    int zr;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 31) != Z_OK)
        return -1;
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    do {
        z.next_out = tmp;
        z.avail_out = sizeof tmp;
        zr = inflate(&z, Z_NO_FLUSH);
        if ((zr != Z_OK && zr != Z_STREAM_END) || ahl_buf_add(out, tmp, sizeof tmp - z.avail_out))
            break;
    } while (zr != Z_STREAM_END);
    inflateEnd(&z);
    return zr == Z_STREAM_END ? 0 : -1;
}

/* Inserts gz as the next version, inside the caller's transaction. */
static int insert(struct ahl__naive *n, const struct ahl_buf *gz)
{
    sqlite3_reset(n->insert);
    sqlite3_bind_int64(n->insert, 1, n->version + 1);
    sqlite3_bind_blob(n->insert, 2, gz->data, (int)gz->len, SQLITE_STATIC);
    int rc = sqlite3_step(n->insert);
    sqlite3_reset(n->insert);
    if (rc != SQLITE_DONE)
        return fail(n, "insert");
    n->version++;
    return 0;
}

int ahl__naive_put(struct ahl__naive *n, const json_t *doc)
{
    struct ahl_buf text, gz;
    int rc = -1;
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    if (ahl_json_write(doc, &text) == 0 && gzip_whole(text.data, text.len, &gz) == 0 &&
        sqlite3_exec(n->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
        rc = insert(n, &gz);
        if (sqlite3_exec(n->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
            rc = fail(n, "commit");
    }
    ahl_buf_release(&text);
    ahl_buf_release(&gz);
    return rc;
}

int ahl__naive_step(struct ahl__naive *n, long k)
{
    struct ahl_buf text, gz;
    json_t *doc = NULL;
    int rc = -1;
    char name[32];
    ahl_buf_init(&text, AHL_BUF_UNLIMITED);
    ahl_buf_init(&gz, AHL_BUF_UNLIMITED);
    if (sqlite3_exec(n->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        fail(n, "begin");
        goto out;
    }
    sqlite3_reset(n->latest);
    if (sqlite3_step(n->latest) != SQLITE_ROW) {
        fail(n, "load the latest version");
        goto end;
    }
    /* The blob is read in place: it stays valid until the statement is reset. */
    const void *blob = sqlite3_column_blob(n->latest, 0);
    size_t blob_len = (size_t)sqlite3_column_bytes(n->latest, 0);
    int inflated = gunzip_whole(blob, blob_len, &text);
    sqlite3_reset(n->latest);
    if (inflated < 0 || !(doc = json_loadb(text.data, text.len, 0, NULL)))
        goto end;
    snprintf(name, sizeof name, "NAIVE^%ld", k);
    json_object_set_new(json_object_get(json_object_get(doc, "Patient"), "DICOM"), "PatientName",
                        json_string(name));
    ahl_buf_reset(&text);
    if (ahl_json_write(doc, &text) < 0 || gzip_whole(text.data, text.len, &gz) < 0)
        goto end;
    rc = insert(n, &gz);
end:
    if (sqlite3_exec(n->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = fail(n, "commit");
out:
    json_decref(doc);
    ahl_buf_release(&text);
    ahl_buf_release(&gz);
    return rc;
}

int ahl__naive_bytes(struct ahl__naive *n, uint64_t *bytes)
{
    sqlite3_reset(n->bytes);
    if (sqlite3_step(n->bytes) != SQLITE_ROW)
        return fail(n, "count the stored bytes");
    *bytes = (uint64_t)sqlite3_column_int64(n->bytes, 0);
    sqlite3_reset(n->bytes);
    return 0;
}
