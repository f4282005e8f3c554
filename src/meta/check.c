/* The integrity check behind `ahilite check`: re-hash every stored chunk, then walk every version
 * of every image set and make sure each chunk it needs is present and sound.
 *
 * Pass 1 scans the chunk table once: a JSON chunk is inflated (its crc and length must match) and
 * its text re-hashed; a map or root chunk is re-hashed as stored. Every hash seen goes into a set
 * of present chunks, every failure into a set of damaged ones, and is reported.
 * Pass 2 walks versions. Each version needs its root, Patient and Study chunks, every node of its
 * Series map, each series chunk, and every node and instance chunk of each Instances map. Each
 * instance's ImageFrames are checked: the frame index must hold the (image set, frame) row that
 * GetImageFrame looks up, with the instance's StoredTransferSyntaxUID, and the caller's verifier
 * (when given) checks the frame's stored bytes, once per distinct frame found sound. A subtree
 * already found sound in this image set is not walked again (its versions share almost
 * everything), so the walk costs the distinct data of each set, not versions x size; versions are
 * scanned set by set, so that memory is per set. Reports name the image set, the version and the
 * place in the document ("Study.Series['1.2.3'].Instances['1.2.3.4'].ImageFrames[0]"); a damaged
 * frame is reported once per image set, at the first version listing it. Pass 3 makes sure every
 * live image set's latest version has its version row.
 */
#include "meta/engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "dicom/p10.h"
#include "base/banned.h"

struct check {
    struct ahl_meta *m;
    struct ahl_store_tx *tx;
    ahl_meta_report_cb cb;
    void *ctx;
    struct ahl_meta_check_opts opts;
    struct ahl_meta_check_stats st;
    struct ahl__hset present, bad;
    struct ahl__hset frames_ok; /* frames (SHA-256 of the id) whose bytes the verifier found sound */
    /* the image set being walked: its subtrees found sound, its frames already reported, and
     * whether GetImageFrame may serve it (not DELETED), so that its frame-index rows must exist */
    char set_id[AHL_ID_LEN + 1];
    struct ahl__hset set_good, set_reported;
    bool set_live;
    struct ahl_buf text;
    /* the version being walked */
    const struct ahl_version_rec *ver;
    const char *series_key;
    /* paging cursors: the last image set and data store visited */
    char last_set[AHL_ID_LEN + 1], last_ds[AHL_ID_LEN + 1];
};

static void report(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(struct check *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->st.problems++;
    if (c->cb)
        c->cb(c->ctx, line);
}

static int scan_chunk(void *vctx, const struct ahl_chunk *ch)
{
    struct check *c = vctx;
    char hex[AHL_SHA256_HEX_LEN + 1], got[AHL_SHA256_HEX_LEN + 1];
    uint8_t h[AHL_SHA256_LEN];
    int rc;
    c->st.chunks++;
    ahl_hex_encode(ch->hash, AHL_SHA256_LEN, hex);
    if ((rc = ahl__hset_add(&c->present, ch->hash)) < 0)
        return rc;
    const char *problem = NULL;
    if (ch->kind == AHL_CHUNK_JSON) {
        ahl_buf_reset(&c->text);
        if (ahl__json_text(ch, &c->text) < 0)
            problem = "its deflate segment does not inflate to its recorded length and crc32";
        else
            ahl_sha256(c->text.data, c->text.len, h);
    } else if (ch->kind == AHL_CHUNK_MAP || ch->kind == AHL_CHUNK_ROOT) {
        if (ch->ulen != ch->len || crc32(0, ch->data, (uInt)ch->len) != ch->crc)
            problem = "its bytes do not match their recorded length and crc32";
        ahl_sha256(ch->data, ch->len, h);
    } else {
        problem = "it has an unknown kind";
    }
    if (!problem && memcmp(h, ch->hash, AHL_SHA256_LEN) != 0) {
        ahl_hex_encode(h, AHL_SHA256_LEN, got);
        report(c, "chunk %s (%s): content hashes to %s", hex,
               ch->kind == AHL_CHUNK_JSON  ? "json"
               : ch->kind == AHL_CHUNK_MAP ? "map"
                                           : "root",
               got);
        return ahl__hset_add(&c->bad, ch->hash);
    }
    if (problem) {
        report(c, "chunk %s: %s", hex, problem);
        return ahl__hset_add(&c->bad, ch->hash);
    }
    return 0;
}

/* Is a chunk the version needs present and sound? Reports it when not. */
static bool need(struct check *c, const uint8_t *h, const char *what)
{
    char hex[AHL_SHA256_HEX_LEN + 1];
    if (ahl__hset_has(&c->present, h) && !ahl__hset_has(&c->bad, h))
        return true;
    ahl_hex_encode(h, AHL_SHA256_LEN, hex);
    report(c, "image set %s version %llu: %s needs chunk %s, which is %s", c->ver->imageset_id,
           (unsigned long long)c->ver->version, what, hex,
           ahl__hset_has(&c->present, h) ? "damaged" : "missing");
    return false;
}

static int inst_node(void *vctx, const uint8_t *hash, bool leaf, const uint8_t *v, size_t vlen)
{
    struct check *c = vctx;
    char what[700];
    (void)v;
    if (leaf) {
        if (vlen != AHL_SHA256_LEN)
            report(c,
                   "image set %s version %llu: Study.Series['%s'].Instances map has %zu-byte "
                   "values",
                   c->ver->imageset_id, (unsigned long long)c->ver->version, c->series_key, vlen);
        return 0;
    }
    snprintf(what, sizeof what, "Study.Series['%s'].Instances (map node)", c->series_key);
    need(c, hash, what);
    return 0;
}

/* A frame id the frame index can hold: 32 characters [0-9a-z] (see frameidx.c). */
static bool indexable_id(const char *id)
{
    return id && strlen(id) == AHL_ID_LEN &&
           strspn(id, "0123456789abcdefghijklmnopqrstuvwxyz") == AHL_ID_LEN;
}

/* Checks one ImageFrames entry of an instance (its frame-index row and its stored bytes), or with
 * bulk set one "BulkData" entry (its stored bytes: bulk data objects have no index rows). */
static int check_object(struct check *c, const char *where, const char *id, const json_t *size,
                        const char *ts, bool bulk)
{
    char problem[900];
    uint8_t key[AHL_SHA256_LEN];
    struct ahl_frame_rec row;
    int rc;
    if (!indexable_id(id))
        return 0; /* not a frame GetImageFrame can be asked for (ahilite dump output, tests) */
    ahl_sha256(id, AHL_ID_LEN, key);
    if (ahl__hset_has(&c->set_reported, key))
        return 0;
    c->st.frame_refs++;
    uint64_t before = c->st.problems;
    if (c->set_live && !bulk) {
        rc = ahl_store_frame_get(c->tx, c->ver->imageset_id, id, &row);
        if (rc == AHL_ENOTFOUND)
            report(c,
                   "image set %s version %llu: %s lists frame %s, but the frame index has no row "
                   "for it (GetImageFrame answers that it does not exist)",
                   c->ver->imageset_id, (unsigned long long)c->ver->version, where, id);
        else if (rc < 0)
            return rc;
        else if (strcmp(row.transfer_syntax, ts) != 0)
            report(c,
                   "image set %s version %llu: %s frame %s: the frame index records stored "
                   "transfer syntax '%s', the instance says '%s'",
                   c->ver->imageset_id, (unsigned long long)c->ver->version, where, id,
                   row.transfer_syntax, ts);
    }
    if (c->st.problems != before && (rc = ahl__hset_add(&c->set_reported, key)) < 0)
        return rc;
    if (!c->opts.verify_frame || ahl__hset_has(&c->frames_ok, key))
        return 0;
    struct ahl_meta_frame_ref ref = {
        .imageset_id = c->ver->imageset_id,
        .version = c->ver->version,
        .where = where,
        .frame_id = id,
        .stored_transfer_syntax = ts,
        .size = json_is_integer(size) && json_integer_value(size) >= 0
                    ? (uint64_t)json_integer_value(size)
                    : UINT64_MAX,
    };
    problem[0] = '\0';
    rc = c->opts.verify_frame(c->opts.verify_ctx, &ref, problem, sizeof problem);
    if (rc == 0) {
        c->st.frames++;
        return ahl__hset_add(&c->frames_ok, key);
    }
    if (rc != AHL_ENOTFOUND && rc != AHL_ECORRUPT)
        return rc;
    report(c, "image set %s version %llu: %s frame %s: %s", c->ver->imageset_id,
           (unsigned long long)c->ver->version, where, id, problem);
    return ahl__hset_add(&c->set_reported, key);
}

static int inst_entry(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct check *c = vctx;
    char what[700];
    json_t *inst = NULL;
    snprintf(what, sizeof what, "Study.Series['%s'].Instances['%.*s']", c->series_key,
             (int)(keylen < 256 ? keylen : 256), key);
    if (!need(c, value, what) || ahl__hset_has(&c->set_good, value))
        return 0;
    uint64_t before = c->st.problems;
    int rc = ahl__json_load(c->m, c->tx, NULL, value, &inst);
    if (rc == AHL_ECORRUPT) {
        report(c, "image set %s version %llu: %s cannot be read", c->ver->imageset_id,
               (unsigned long long)c->ver->version, what);
        return 0;
    }
    if (rc < 0)
        return rc;
    const json_t *frames = json_object_get(inst, "ImageFrames");
    const char *ts = json_string_value(json_object_get(inst, "StoredTransferSyntaxUID"));
    char where[800];
    for (size_t i = 0; rc == 0 && i < json_array_size(frames); i++) {
        const json_t *fr = json_array_get(frames, i);
        snprintf(where, sizeof where, "%s.ImageFrames[%zu]", what, i);
        rc = check_object(c, where, json_string_value(json_object_get(fr, "ID")),
                          json_object_get(fr, "FrameSizeInBytes"), ts ? ts : "", false);
    }
    const char *tag;
    json_t *b;
    json_object_foreach(json_object_get(inst, "BulkData"), tag, b)
    {
        if (rc < 0)
            break;
        snprintf(where, sizeof where, "%s.BulkData['%.8s']", what, tag);
        rc = check_object(c, where, json_string_value(json_object_get(b, "ID")),
                          json_object_get(b, "Length"), AHL_TS_EXPLICIT_LE, true);
    }
    json_decref(inst);
    if (rc == 0 && c->st.problems == before)
        rc = ahl__hset_add(&c->set_good, value);
    return rc;
}

struct series_walk {
    struct check *c;
};

static int series_entry(void *vctx, const char *key, size_t keylen, const uint8_t *value)
{
    struct check *c = vctx;
    char skey[300], what[700];
    snprintf(skey, sizeof skey, "%.*s", (int)(keylen < 256 ? keylen : 256), key);
    snprintf(what, sizeof what, "Study.Series['%s']", skey);
    need(c, value, what);
    const uint8_t *iroot = value + AHL_SHA256_LEN;
    if (ahl__hash_is_zero(iroot) || ahl__hset_has(&c->set_good, iroot))
        return 0;
    uint64_t before = c->st.problems;
    c->series_key = skey;
    int rc = ahl__map_walk_nodes(c->m, c->tx, iroot, inst_node, c);
    if (rc == 0)
        rc = ahl__map_walk(c->m, c->tx, NULL, iroot, inst_entry, c);
    if (rc == AHL_ECORRUPT) {
        report(c, "image set %s version %llu: Study.Series['%s'].Instances map cannot be read",
               c->ver->imageset_id, (unsigned long long)c->ver->version, skey);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (c->st.problems == before)
        return ahl__hset_add(&c->set_good, iroot);
    return 0;
}

static int series_node(void *vctx, const uint8_t *hash, bool leaf, const uint8_t *v, size_t vlen)
{
    (void)v;
    (void)vlen;
    if (!leaf)
        need(vctx, hash, "the Series map (map node)");
    return 0;
}

/* Versions come set by set: on a new set, forget the last one's walk and look up its state. */
static int enter_set(struct check *c, const char *imageset_id)
{
    struct ahl_imageset_rec set;
    if (!strcmp(c->set_id, imageset_id))
        return 0;
    memcpy(c->set_id, imageset_id, sizeof c->set_id);
    ahl__hset_clear(&c->set_good);
    ahl__hset_clear(&c->set_reported);
    int rc = ahl_store_imageset_get(c->tx, NULL, imageset_id, &set);
    if (rc < 0 && rc != AHL_ENOTFOUND)
        return rc;
    c->set_live = rc == 0 && ahl_imageset_state_parse(set.state) != AHL_IMAGESET_DELETED;
    return 0;
}

static int check_version(void *vctx, const struct ahl_version_rec *ver)
{
    struct check *c = vctx;
    struct ahl__root r;
    int rc;
    c->st.versions++;
    c->ver = ver;
    if ((rc = enter_set(c, ver->imageset_id)) < 0)
        return rc;
    if (!need(c, ver->root, "its root"))
        return 0;
    if ((rc = ahl__root_load(c->m, c->tx, NULL, ver->root, &r)) < 0) {
        if (rc != AHL_ECORRUPT)
            return rc;
        report(c, "image set %s version %llu: its root cannot be read", ver->imageset_id,
               (unsigned long long)ver->version);
        return 0;
    }
    need(c, r.patient, "Patient");
    need(c, r.study, "Study");
    if (ahl__hash_is_zero(r.series) || ahl__hset_has(&c->set_good, r.series))
        return 0;
    uint64_t before = c->st.problems;
    rc = ahl__map_walk_nodes(c->m, c->tx, r.series, series_node, c);
    if (rc == 0)
        rc = ahl__map_walk(c->m, c->tx, NULL, r.series, series_entry, c);
    if (rc == AHL_ECORRUPT) {
        report(c, "image set %s version %llu: the Series map cannot be read", ver->imageset_id,
               (unsigned long long)ver->version);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (c->st.problems == before)
        return ahl__hset_add(&c->set_good, r.series);
    return 0;
}

/* Every live image set's latest version must exist. */
static int check_set(void *vctx, const struct ahl_imageset_rec *set)
{
    struct check *c = vctx;
    struct ahl_version_rec v;
    memcpy(c->last_set, set->id, sizeof c->last_set);
    int rc = ahl_store_version_get(c->tx, set->id, set->latest_version, &v);
    if (rc == AHL_ENOTFOUND) {
        report(c, "image set %s: its latest version %llu has no version row", set->id,
               (unsigned long long)set->latest_version);
        return 0;
    }
    return rc;
}

static int check_datastore(void *vctx, const struct ahl_datastore_rec *ds)
{
    struct check *c = vctx;
    char after[AHL_ID_LEN + 1] = "";
    int rc;
    memcpy(c->last_ds, ds->id, sizeof c->last_ds);
    do {
        c->last_set[0] = '\0';
        if ((rc = ahl_store_imageset_list(c->tx, ds->id, after, 500, check_set, c)) < 0)
            return rc;
        memcpy(after, c->last_set, sizeof after);
    } while (after[0]);
    return 0;
}

int ahl_meta_check(struct ahl_meta *m, ahl_meta_report_cb cb, void *ctx,
                   struct ahl_meta_check_stats *stats)
{
    return ahl_meta_check_with(m, NULL, cb, ctx, stats);
}

int ahl_meta_check_with(struct ahl_meta *m, const struct ahl_meta_check_opts *opts,
                        ahl_meta_report_cb cb, void *ctx, struct ahl_meta_check_stats *stats)
{
    struct check c;
    int rc;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.cb = cb;
    c.ctx = ctx;
    if (opts)
        c.opts = *opts;
    ahl_buf_init(&c.text, AHL__MAX_CHUNK);
    if ((rc = ahl_store_begin(m->store, false, &c.tx)) < 0)
        goto out;
    if ((rc = ahl_store_chunk_scan(c.tx, scan_chunk, &c)) < 0)
        goto out;
    if ((rc = ahl_store_version_scan(c.tx, check_version, &c)) < 0)
        goto out;
    /* Every live image set's latest version exists: data stores a page at a time. */
    char after[AHL_ID_LEN + 1] = "";
    do {
        c.last_ds[0] = '\0';
        if ((rc = ahl_store_datastore_list(c.tx, NULL, after, 100, check_datastore, &c)) < 0)
            goto out;
        memcpy(after, c.last_ds, sizeof after);
    } while (after[0]);
out:
    ahl_store_rollback(c.tx);
    ahl_buf_release(&c.text);
    free(c.present.v);
    free(c.bad.v);
    free(c.frames_ok.v);
    free(c.set_good.v);
    free(c.set_reported.v);
    if (stats)
        *stats = c.st;
    if (rc < 0)
        return rc;
    return c.st.problems ? AHL_ECORRUPT : 0;
}
