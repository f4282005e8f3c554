// module: api
/* Fuzzes DICOMweb request handling (src/api/dicomweb.c, dicomweb_frames.c, dicomweb_bulk.c,
 * dicomweb_qido.c, dicomweb_retrieve.c, and through it export/ and the Part-10 writer) over the
 * real engine, SQLite store and frame store, without HTTP, with requests in a small text form:
 *
 *     METHOD\n
 *     raw path (still percent-encoded)\n
 *     raw query without '?'  (an empty line means "no query string")\n
 *     Accept header value    (an empty line means "no Accept header")\n
 *     Host header value      (optional; empty or absent means none)\n
 *
 * The first call builds a fixture in a temporary data directory (removed at exit): data store
 * DS_ID with two primary image sets of study STUDY and one other set of it, and frames in the
 * frame store:
 *   set SET_P1 (primary): series SERIES_1 with
 *       SOP_1  3 HTJ2K frames (1.2.840.10008.1.2.4.202): 1 and 2 stored, 3 listed but absent;
 *       SOP_2  1 frame stored as Explicit VR Little Endian (1.2.840.10008.1.2.1);
 *       SOP_3  no pixel data; one bulk data value (0042,0011) OB, stored (BULK_ID in seeds);
 *   set SET_P2 (primary): series SERIES_2 with SOP_4, 1 HTJ2K frame (the same bytes as SOP_1's
 *       first, so the same file);
 *   set SET_OTHER (not primary): series SERIES_1 with SOP_1, versions 1 and 2 (PatientName
 *       changed).
 * Each request whose path ahl__dicomweb_path claims is served as the server serves it
 * (ahl__dicomweb_serve). Nothing may crash, leak or read out of bounds, and:
 *   - a failure is AHL_EINVAL (400) or AHL_ENOTFOUND (404): the fixture is sound, so anything
 *     else (a stored document hidoc cannot convert, a frame that does not decode) is a bug; err
 *     carries the code and a non-empty, NUL-terminated, valid UTF-8 message;
 *   - a success has a body and a content type, and status 200 or 406: 200 with
 *     application/dicom+json is a JSON array of objects (non-empty but for a search); 200 with
 *     multipart/related holds one part per listed frame (frames) or at least one Part-10 file
 *     (retrieve) between its boundaries; 200 with application/dicom is a Part-10 file our reader
 *     reads back; 406 is a JSON error body. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz.h"

#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/codec.h"
#include "api/dicomweb_internal.h"
#include "base/text.h"
#include "blob/framestore.h"
#include "dicom/p10.h"
#include "frames/frames.h"
#include "meta/meta.h"
#include "store/store.h"

#define DS_ID "0123456789abcdef0123456789abcdef"
#define SET_P1 "a0000000000000000000000000000001"
#define SET_P2 "a0000000000000000000000000000002"
#define SET_OTHER "b0000000000000000000000000000001"
#define STUDY "1.2.826.0.1.3680043.8.498.1"
#define SERIES_1 STUDY ".1"
#define SERIES_2 STUDY ".2"
#define SOP_1 SERIES_1 ".1"
#define SOP_2 SERIES_1 ".2"
#define SOP_3 SERIES_1 ".3"
#define SOP_4 SERIES_2 ".1"
/* A frame id no file has. */
#define MISSING_FRAME "00000000000000000000000000000bad"

#define ROWS 4
#define COLUMNS 4

static struct {
    bool ready;
    char dir[256];
    struct ahl_store *store;
    struct ahl_meta *meta;
    struct ahl_api_service svc;
} fx;

static _Noreturn void die(const char *what, const struct ahl_err *err)
{
    fprintf(stderr, "fuzz_dicomweb setup: %s: %s\n", what, err ? err->msg : "");
    abort();
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    ahl_meta_close(fx.meta);
    ahl_store_close(fx.store);
    nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A 4x4 12-bit frame (little-endian samples); seed varies the values. */
static void make_pixels(uint8_t px[ROWS * COLUMNS * 2], unsigned seed)
{
    for (unsigned i = 0; i < ROWS * COLUMNS; i++) {
        unsigned v = (i * 257u + seed * 911u) & 0xfffu;
        px[2 * i] = (uint8_t)v;
        px[2 * i + 1] = (uint8_t)(v >> 8);
    }
}

/* Stores bytes under their content address for syntax ts; id receives it. */
static void put_frame(const char *ts, const uint8_t *data, size_t len, char id[33])
{
    struct ahl_err err;
    ahl_frame_id(ts, data, len, id);
    if (ahl_framestore_put(&fx.svc.frames, id, data, len, &err) < 0)
        die("storing a frame", &err);
}

/* Fails the setup when v is NULL (out of memory); returns v. */
static json_t *need(json_t *v)
{
    if (!v)
        die("out of memory", NULL);
    return v;
}

/* An instance node: 4x4 12-bit CT pixels stored as ts in the frames ids[0..n), or, with ts NULL,
 * an instance without pixel data. */
static json_t *instance(const char *sop, int number, const char *ts, const char *const *ids,
                        size_t n)
{
    json_t *dicom =
        need(json_pack("{s:s,s:s,s:i}", "SOPInstanceUID", sop, "SOPClassUID",
                       ts ? "1.2.840.10008.5.1.4.1.1.2" : "1.2.840.10008.5.1.4.1.1.88.11",
                       "InstanceNumber", number));
    json_t *node = need(json_pack("{s:o}", "DICOM", dicom));
    if (!ts)
        return node;
    json_t *pixels =
        need(json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s}", "Rows", ROWS, "Columns", COLUMNS,
                       "BitsAllocated", 16, "BitsStored", 12, "HighBit", 11, "PixelRepresentation",
                       0, "SamplesPerPixel", 1, "PhotometricInterpretation", "MONOCHROME2"));
    json_t *frames = need(json_array());
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(frames, need(json_pack("{s:s}", "ID", ids[i]))) < 0)
            die("out of memory", NULL);
    if (json_object_update(dicom, pixels) < 0 ||
        json_object_set_new(dicom, "NumberOfFrames", json_integer((json_int_t)n)) < 0 ||
        json_object_set_new(node, "ImageFrames", frames) < 0 ||
        json_object_set_new(node, "StoredTransferSyntaxUID", need(json_string(ts))) < 0)
        die("out of memory", NULL);
    json_decref(pixels);
    return node;
}

/* Creates image set id holding one series of STUDY with the instances (a {uid: node} object,
 * taken over). */
static void create_set(const char *id, bool primary, const char *patient, const char *series,
                       int series_number, json_t *instances)
{
    json_t *doc = need(json_pack(
        "{s:{s:{s:s,s:s}},s:{s:{s:s,s:s},s:{s:{s:{s:s,s:s,s:i},s:o}}}}", "Patient", "DICOM",
        "PatientName", patient, "PatientID", "FZ1", "Study", "DICOM", "StudyInstanceUID", STUDY,
        "StudyDate", "20260101", "Series", series, "DICOM", "SeriesInstanceUID", series, "Modality",
        "CT", "SeriesNumber", series_number, "Instances", instances));
    struct ahl_meta_create_opts o = {.is_primary = primary, .imageset_id = id};
    struct ahl_meta_info info;
    struct ahl_err err;
    if (ahl_meta_imageset_create(fx.meta, DS_ID, doc, &o, &info, &err) < 0)
        die("creating an image set", &err);
    json_decref(doc);
}

static void setup(void)
{
    struct ahl_err err;
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec ds = {.created_at_ms = 1, .updated_at_ms = 1};
    char root[300];
    const char *tmp = getenv("TMPDIR");

    snprintf(fx.dir, sizeof fx.dir, "%s/ahl-fuzz-dicomweb-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx.dir))
        die("mkdtemp", NULL);
    if (ahl_store_open_sqlite(fx.dir, 0, &fx.store) < 0 ||
        ahl_meta_open(fx.store, NULL, &fx.meta) < 0)
        die("opening the store", NULL);
    atexit(teardown);
    fx.svc.meta = fx.meta;
    fx.svc.store = fx.store;
    snprintf(fx.svc.region, sizeof fx.svc.region, "us-east-1");
    snprintf(fx.svc.account_id, sizeof fx.svc.account_id, "123456789012");
    snprintf(fx.svc.data_dir, sizeof fx.svc.data_dir, "%s", fx.dir);
    snprintf(root, sizeof root, "%s/frames", fx.dir);
    if (ahl_framestore_open(&fx.svc.frames, root, &err) < 0)
        die("opening the frame store", &err);
    fx.svc.frames_ready = 1;

    memcpy(ds.id, DS_ID, sizeof DS_ID);
    snprintf(ds.name, sizeof ds.name, "fuzz");
    snprintf(ds.status, sizeof ds.status, "ACTIVE");
    snprintf(ds.lossless_storage_format, sizeof ds.lossless_storage_format, "HTJ2K");
    if (ahl_store_begin(fx.store, true, &tx) < 0 || ahl_store_datastore_put(tx, &ds, true) < 0 ||
        ahl_store_commit(tx) < 0)
        die("creating the data store", NULL);

    /* Two HTJ2K frames and one native one. */
    char htj2k[2][33], native[33];
    for (unsigned i = 0; i < 2; i++) {
        uint8_t px[ROWS * COLUMNS * 2];
        make_pixels(px, i);
        struct ahl_raw_frame f = {.width = COLUMNS,
                                  .height = ROWS,
                                  .components = 1,
                                  .bytes_per_sample = 2,
                                  .precision = 12,
                                  .data = px,
                                  .len = sizeof px};
        snprintf(f.photometric, sizeof f.photometric, "MONOCHROME2");
        uint8_t *enc = NULL;
        size_t enc_len = 0;
        if (ahl_htj2k_encode(&f, &enc, &enc_len, &err) < 0)
            die("encoding a frame", &err);
        put_frame(AHL_TS_HTJ2K_RPCL, enc, enc_len, htj2k[i]);
        free(enc);
    }
    uint8_t px[ROWS * COLUMNS * 2];
    make_pixels(px, 7);
    put_frame(AHL_TS_EXPLICIT_LE, px, sizeof px, native);

    /* A bulk data object of SOP_3 (its id, 8c8fbdef…, is in the seeds). */
    uint8_t bulk[1000];
    char bulk_id[33];
    for (size_t i = 0; i < sizeof bulk; i++)
        bulk[i] = (uint8_t)(i * 7);
    put_frame(AHL_TS_EXPLICIT_LE, bulk, sizeof bulk, bulk_id);
    json_t *sop3 = instance(SOP_3, 3, NULL, NULL, 0);
    if (json_object_set_new(sop3, "BulkData",
                            need(json_pack("{s:{s:s,s:s,s:i}}", "00420011", "ID", bulk_id, "VR",
                                           "OB", "Length", (int)sizeof bulk))) < 0)
        die("out of memory", NULL);

    const char *sop1_frames[] = {htj2k[0], htj2k[1], MISSING_FRAME};
    const char *sop2_frames[] = {native};
    const char *other_frames[] = {htj2k[1], htj2k[0]};
    create_set(SET_P1, true, "Fuzz^Primary", SERIES_1, 1,
               need(json_pack(
                   "{s:o,s:o,s:o}", SOP_1, instance(SOP_1, 1, AHL_TS_HTJ2K_RPCL, sop1_frames, 3),
                   SOP_2, instance(SOP_2, 2, AHL_TS_EXPLICIT_LE, sop2_frames, 1), SOP_3, sop3)));
    create_set(
        SET_P2, true, "Fuzz^Primary", SERIES_2, 2,
        need(json_pack("{s:o}", SOP_4, instance(SOP_4, 1, AHL_TS_HTJ2K_RPCL, sop1_frames, 1))));
    create_set(
        SET_OTHER, false, "Fuzz^Other", SERIES_1, 1,
        need(json_pack("{s:o}", SOP_1, instance(SOP_1, 1, AHL_TS_HTJ2K_RPCL, other_frames, 2))));
    struct ahl_meta_update u = {.latest_version = 1,
                                .updatable =
                                    "{\"Patient\":{\"DICOM\":{\"PatientName\":\"Fuzz^Updated\"}}}"};
    u.updatable_len = strlen(u.updatable);
    struct ahl_meta_update_result res;
    if (ahl_meta_update(fx.meta, DS_ID, SET_OTHER, &u, &res, &err) < 0)
        die("updating an image set", &err);
    fx.ready = true;
}

/* The lines of a request (see the top comment). */
enum { L_METHOD, L_PATH, L_QUERY, L_ACCEPT, L_HOST, L_COUNT };

/* Splits the input into L_COUNT NUL-terminated lines, each in an allocation of its own so that a
 * read past a line's end is caught; a NUL inside a line ends it early (as it would in a C string
 * from the HTTP library), and lines the input lacks are empty. */
static void split_lines(const uint8_t *data, size_t size, char *lines[L_COUNT])
{
    for (size_t i = 0; i < L_COUNT; i++) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t len = nl ? (size_t)(nl - data) : size;
        if (!(lines[i] = strndup((const char *)data, len)))
            abort();
        data += len + (nl != NULL);
        size -= len + (nl != NULL);
    }
}

static void check_failure(int rc, const struct ahl_err *err)
{
    if (rc != AHL_EINVAL && rc != AHL_ENOTFOUND) {
        fprintf(stderr, "unexpected failure %s: %s\n", ahl_err_name(rc), err->msg);
        abort();
    }
    size_t n = strnlen(err->msg, sizeof err->msg);
    if (err->code != rc || n == 0 || n == sizeof err->msg || !ahl_utf8_valid(err->msg, n))
        abort();
    int status = ahl_api_error_status(ahl_api_error_type(err));
    if (status != (rc == AHL_EINVAL ? 400 : 404))
        abort();
}

/* The number of frames a path's frame list names (1 + its commas); 0 for a retrieve path. */
static size_t listed_frames(const char *path)
{
    const char *l = strstr(path, "/frames/");
    size_t n = 1;
    if (!l)
        return 0;
    for (l += strlen("/frames/"); *l; l++)
        n += *l == ',';
    return n;
}

static void check_multipart(const char *path, const char *content_type, const struct ahl_buf *b)
{
    const char *bp = strstr(content_type, "; boundary=");
    if (!bp)
        abort();
    bp += strlen("; boundary=");
    char delim[64], last[64];
    int dn = snprintf(delim, sizeof delim, "\r\n--%s\r\n", bp);
    int ln = snprintf(last, sizeof last, "--%s--\r\n", bp);
    if (strlen(bp) != 32 || dn <= 0 || (size_t)dn >= sizeof delim || ln <= 0 ||
        (size_t)ln >= sizeof last)
        abort();
    /* The body starts with the first delimiter (without its leading CRLF), ends with the last. */
    if (b->len < (size_t)(dn - 2 + ln) || memcmp(b->data, delim + 2, (size_t)dn - 2) != 0 ||
        memcmp(b->data + b->len - ln, last, (size_t)ln) != 0)
        abort();
    size_t parts = 1;
    const char *d = b->data;
    for (size_t i = 0; i + (size_t)dn <= b->len; i++)
        if (d[i] == '\r' && memcmp(d + i, delim, (size_t)dn) == 0)
            parts++;
    size_t listed = strstr(path, "/bulkdata/") ? 1 : listed_frames(path);
    if (listed ? parts != listed
               : strstr(b->data, "\r\n\r\n") == NULL ||
                     memcmp(strstr(b->data, "\r\n\r\n") + 4 + 128, "DICM", 4))
        abort();
}

/* A Part-10 file our reader reads back whole. */
static void check_p10(const struct ahl_buf *b)
{
    struct ahl_dcm_file *f = NULL;
    struct ahl_err err;
    if (b->len < 132 || memcmp(b->data + 128, "DICM", 4) != 0)
        abort();
    if (ahl_p10_read_mem(b->data, b->len, NULL, &f, &err) < 0) {
        fprintf(stderr, "a retrieved file does not read back: %s\n", err.msg);
        abort();
    }
    ahl_dcm_file_free(f);
}

static void check_success(const char *path, const struct ahl__dicomweb_request *rq,
                          const struct ahl_api_resp *resp)
{
    if (!resp->content_type || resp->raw.len == 0)
        abort();
    if (rq->status == 406) {
        json_t *doc = json_loadb(resp->raw.data, resp->raw.len, 0, NULL);
        if (strcmp(resp->content_type, "application/json") != 0 || !doc ||
            !json_is_string(json_object_get(doc, "__type")) ||
            !json_is_string(json_object_get(doc, "message")))
            abort();
        json_decref(doc);
        return;
    }
    if (rq->status != 200)
        abort();
    if (strcmp(resp->content_type, "application/dicom+json") == 0) {
        json_t *doc = json_loadb(resp->raw.data, resp->raw.len, 0, NULL);
        size_t i;
        json_t *v;
        /* A search may find nothing; a metadata resource is a 404 then. */
        if (!json_is_array(doc) || (json_array_size(doc) == 0 && !ahl__qido_path(path)))
            abort();
        json_array_foreach(doc, i, v)
        {
            if (!json_is_object(v))
                abort();
        }
        json_decref(doc);
        return;
    }
    if (strncmp(resp->content_type, "application/dicom; transfer-syntax=", 35) == 0 &&
        resp->content_type == rq->content_type) {
        check_p10(&resp->raw);
        return;
    }
    if (strcmp(resp->content_type, "application/octet-stream") == 0 && strstr(path, "/bulkdata/") &&
        resp->raw.len == 1000)
        return;
    if (strncmp(resp->content_type, "multipart/related; type=\"", 25) != 0 ||
        resp->content_type != rq->content_type)
        abort();
    check_multipart(path, resp->content_type, &resp->raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.ready)
        setup();
    char *line[L_COUNT];
    split_lines(data, size, line);
    const char *path = line[L_PATH];

    if (ahl__dicomweb_path(path)) {
        struct ahl__dicomweb_request rq = {
            .method = line[L_METHOD],
            .path = path,
            .query = line[L_QUERY][0] ? line[L_QUERY] : NULL,
            .host = line[L_HOST][0] ? line[L_HOST] : NULL,
            .accept = line[L_ACCEPT][0] ? line[L_ACCEPT] : NULL,
        };
        struct ahl_api_resp resp = {.fd = -1, .accept = rq.accept};
        struct ahl_err err;
        ahl_err_clear(&err);
        ahl_buf_init(&resp.raw, AHL_BUF_UNLIMITED);
        int rc = ahl__dicomweb_serve(&fx.svc, &rq, &resp, &err);
        if (rc < 0)
            check_failure(rc, &err);
        else if (rc == 0)
            check_success(path, &rq, &resp);
        else
            abort();
        if (resp.json || resp.fd >= 0)
            abort();
        ahl_buf_release(&resp.raw);
    }

    for (size_t i = 0; i < L_COUNT; i++)
        free(line[i]);
    return 0;
}
