/* The import pipeline (import.h): prepare one DICOM object into a single-instance document with
 * its frames stored, then commit instances into primary or non-primary image sets, batched per
 * series, serialized per grouping key. */
#include "blob/framestore.h"
#include "import/import.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/codec.h"
#include "base/fileio.h"
#include "dicom/normalize.h"
#include "dicom/p10.h"
#include "frames/frames.h"
#include "import/group.h"
#include "base/banned.h"

#define IMPORT_STRIPES 64
#define IMPORT_MAX_GROUPS 64    /* pending groups in a batch before everything is committed */
#define IMPORT_MAX_PENDING 4096 /* pending items in a batch before the largest group is */
#define IMPORT_CACHE 16         /* candidates kept per importer */
#define IMPORT_MAX_SETS 256     /* candidate image sets examined per study */
#define IMPORT_CAS_RETRIES 16   /* another writer advanced the set in between: try again */
#define IMPORT_MAX_INFLATED ((uint64_t)4 << 30) /* HealthImaging's per-file quota */

struct ahl_importer {
    struct ahl_meta *m;
    char ds[AHL_ID_LEN + 1];
    struct ahl_framestore fs;
    char lock_dir[1024]; /* "" when only in-process locking applies */
    char tmp_dir[1024];
    unsigned batch_max;
    /* Candidates of recently written primary sets (their documents without Instances), so a
     * series committed in several batches is not re-read, whole, before each batch. An entry
     * is used only while the set's latest version is the one it describes. */
    pthread_mutex_t cache_mu;
    struct cand_cache {
        char id[AHL_ID_LEN + 1];
        uint64_t version;
        json_t *cand;
        uint64_t used;
    } cache[IMPORT_CACHE];
    uint64_t cache_clock;
    /* The frame memory budget (import.h): the one given in the options, or own_budget. */
    struct ahl_import_budget own_budget, *budget;
};

struct ahl_import_item {
    json_t *doc;
    char key[AHL_GROUP_KEY_LEN + 1];
    const char *study_uid, *series_uid, *sop_uid; /* borrowed from doc */
    struct ahl_import_result res;                 /* bytes, frames, SOP UID so far */
};

/* ---- results ------------------------------------------------------------------------------ */

static void res_init(struct ahl_import_result *res)
{
    memset(res, 0, sizeof *res);
}

static void set_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* The failure's exceptionType as HealthImaging's job output format has it (failure.ndjson): the
 * format names two, the input's fault and the server's. */
static void res_blame(struct ahl_import_result *res, bool customer)
{
    res->customer_error = customer;
    set_str(res->exception_type, sizeof res->exception_type,
            customer ? "ValidationException" : "InternalServerException");
}

/* Records a failure. The input is at fault unless the failure is the server's own (memory, I/O on
 * our side, damaged stored data, internal errors). */
static int res_fail(struct ahl_import_result *res, int rc, const struct ahl_err *err,
                    const char *prefix)
{
    res->rc = rc < 0 ? rc : AHL_EINTERNAL;
    res_blame(res, !(res->rc == AHL_ENOMEM || res->rc == AHL_EINTERNAL || res->rc == AHL_ECORRUPT ||
                     res->rc == AHL_EIO || res->rc == AHL_ENOSPC));
    const char *msg = err && err->msg[0] ? err->msg : ahl_strerror(res->rc);
    snprintf(res->message, sizeof res->message, "%s%s", prefix ? prefix : "", msg);
    return res->rc;
}

/* ---- opening ------------------------------------------------------------------------------ */

int ahl_importer_open(struct ahl_meta *m, const char *datastore_id,
                      const struct ahl_import_opts *opts, struct ahl_importer **out,
                      struct ahl_err *err)
{
    struct ahl_importer *im = NULL;
    struct ahl_store_tx *tx = NULL;
    struct ahl_datastore_rec d;
    int rc;
    *out = NULL;
    if (!opts || (!opts->frames && !opts->frames_root) || !datastore_id)
        return ahl_fail(err, AHL_EINVAL, "an importer needs a data store and a frame store");
    if (!(im = calloc(1, sizeof *im)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    im->m = m;
    pthread_mutex_init(&im->cache_mu, NULL);
    ahl_import_budget_init(&im->own_budget, opts->memory_budget);
    im->budget = opts->budget ? opts->budget : &im->own_budget;
    im->batch_max = opts->batch_max ? opts->batch_max : AHL_IMPORT_BATCH_DEFAULT;
    if (ahl_store_strset(im->ds, sizeof im->ds, datastore_id) < 0) {
        rc = ahl_fail(err, AHL_ENOTFOUND, "data store %.40s does not exist", datastore_id);
        goto out;
    }
    if ((rc = ahl_store_begin(ahl_meta_store(m), false, &tx)) < 0) {
        rc = ahl_fail(err, rc, "cannot read the store: %s", ahl_strerror(rc));
        goto out;
    }
    rc = ahl_store_datastore_get(tx, datastore_id, &d);
    ahl_store_rollback(tx);
    if (rc == AHL_ENOTFOUND) {
        rc = ahl_fail(err, rc, "data store %s does not exist", datastore_id);
        goto out;
    }
    if (rc < 0) {
        rc = ahl_fail(err, rc, "cannot read data store %s: %s", datastore_id, ahl_strerror(rc));
        goto out;
    }
    if (strcmp(d.status, "ACTIVE") != 0) {
        rc =
            ahl_fail(err, AHL_ECONFLICT, "data store %s is %s, not ACTIVE", datastore_id, d.status);
        goto out;
    }
    if (opts->frames)
        im->fs = *opts->frames;
    else if ((rc = ahl_framestore_open(&im->fs, opts->frames_root, err)) < 0)
        goto out;
    if (opts->lock_dir) {
        int w = snprintf(im->lock_dir, sizeof im->lock_dir, "%s/import-locks", opts->lock_dir);
        if (w < 0 || (size_t)w >= sizeof im->lock_dir) {
            rc = ahl_fail(err, AHL_ETOOBIG, "lock directory path too long");
            goto out;
        }
        if (mkdir(im->lock_dir, 0700) < 0 && errno != EEXIST) {
            rc = ahl_fail(err, AHL_EIO, "cannot create %s: %s", im->lock_dir, strerror(errno));
            goto out;
        }
    }
    const char *t = opts->tmp_dir ? opts->tmp_dir : getenv("TMPDIR");
    set_str(im->tmp_dir, sizeof im->tmp_dir, t && *t ? t : "/tmp");
    *out = im;
    im = NULL;
    rc = 0;
out:
    free(im);
    return rc;
}

void ahl_importer_close(struct ahl_importer *im)
{
    if (!im)
        return;
    for (int i = 0; i < IMPORT_CACHE; i++)
        json_decref(im->cache[i].cand);
    pthread_mutex_destroy(&im->cache_mu);
    ahl_import_budget_release(&im->own_budget);
    free(im);
}

/* Takes the cached candidate of set id at version (NULL when not cached); the caller owns it. */
static json_t *cache_take(struct ahl_importer *im, const char *id, uint64_t version)
{
    json_t *c = NULL;
    pthread_mutex_lock(&im->cache_mu);
    for (int i = 0; i < IMPORT_CACHE; i++) {
        struct cand_cache *e = &im->cache[i];
        if (e->cand && !strcmp(e->id, id)) {
            if (e->version == version)
                c = e->cand;
            else
                json_decref(e->cand);
            e->cand = NULL;
        }
    }
    pthread_mutex_unlock(&im->cache_mu);
    return c;
}

/* Keeps cand (ownership passes) as the candidate of set id at version, evicting the least
 * recently stored entry. */
static void cache_put(struct ahl_importer *im, const char *id, uint64_t version, json_t *cand)
{
    pthread_mutex_lock(&im->cache_mu);
    struct cand_cache *v = &im->cache[0];
    for (int i = 0; i < IMPORT_CACHE; i++) {
        struct cand_cache *e = &im->cache[i];
        if (!e->cand || !strcmp(e->id, id)) {
            v = e;
            break;
        }
        if (e->used < v->used)
            v = e;
    }
    json_decref(v->cand);
    memcpy(v->id, id, sizeof v->id);
    v->version = version;
    v->cand = cand;
    v->used = ++im->cache_clock;
    pthread_mutex_unlock(&im->cache_mu);
}

/* ---- reading frames ----------------------------------------------------------------------- */

static int pread_full(int fd, uint64_t off, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? AHL_EIO : AHL_EPARSE;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int fd_read_fn(void *ctx, uint64_t off, void *buf, size_t n)
{
    return pread_full(*(int *)ctx, off, buf, n);
}

/* An unlinked scratch file in the importer's temporary directory. */
static int scratch_fd(const struct ahl_importer *im, struct ahl_err *err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/ahl-import-XXXXXX", im->tmp_dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return ahl_fail(err, AHL_EIO, "cannot create a scratch file: %s",
                        strerror(errno)); /* messages reach job outputs: no server paths */
    unlink(path);
    return fd;
}

/* For a deflated file the reader's offsets refer to "the file up to the end of the meta group,
 * then the inflated dataset". That stream is written to a scratch file, so frames are read from
 * it with pread like any other file and memory stays bounded. */
static int inflate_to_scratch(const struct ahl_importer *im, const struct ahl_dcm_file *f, int fd,
                              int *out_fd, struct ahl_err *err)
{
    const struct ahl_dcm_elem *gl = ahl_dcm_find(&f->meta, AHL_DCM_TAG(0x0002, 0x0000));
    uint8_t in[65536], outb[65536];
    z_stream z;
    int rc = 0, sfd, zr = Z_OK;
    uint64_t total = 0, pos;
    *out_fd = -1;
    if (!gl || !gl->value || gl->value_len != 4)
        return ahl_fail(err, AHL_EPARSE, "deflated file without FileMetaInformationGroupLength");
    uint32_t glen = (uint32_t)gl->value[0] | (uint32_t)gl->value[1] << 8 |
                    (uint32_t)gl->value[2] << 16 | (uint32_t)gl->value[3] << 24;
    uint64_t meta_end = (f->has_preamble ? 132u : 0u) + 12u + (uint64_t)glen;
    if ((sfd = scratch_fd(im, err)) < 0)
        return sfd;
    for (pos = 0; pos < meta_end && rc == 0;) {
        size_t n = meta_end - pos < sizeof in ? (size_t)(meta_end - pos) : sizeof in;
        if ((rc = pread_full(fd, pos, in, n)) < 0)
            rc = ahl_fail(err, AHL_EPARSE, "meta group runs past the end of the file");
        else if (ahl_write_all(sfd, in, n) < 0)
            rc = ahl_fail(err, AHL_EIO, "cannot write a scratch file");
        pos += n;
    }
    /* Inflate until the end of the compressed stream, not the end of the input: zlib may hold
     * output it has yet to hand over after it took in the last input byte, so it is called again
     * with no input until it says the stream ended, or that it cannot go on (Z_BUF_ERROR with
     * nothing left to read: the stream was cut short). Bytes after the stream's end are not part
     * of the dataset, as for the reader (p10.c). */
    memset(&z, 0, sizeof z);
    if (rc == 0 && inflateInit2(&z, -15) != Z_OK)
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
    bool eof = false;
    while (rc == 0 && zr != Z_STREAM_END) {
        if (z.avail_in == 0 && !eof) {
            ssize_t r = pread(fd, in, sizeof in, (off_t)pos);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = ahl_fail(err, AHL_EIO, "read error: %s", strerror(errno));
                break;
            }
            eof = r == 0;
            pos += (uint64_t)r;
            z.next_in = in;
            z.avail_in = (uInt)r;
        }
        z.next_out = outb;
        z.avail_out = sizeof outb;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr == Z_BUF_ERROR && z.avail_in == 0 && eof) {
            rc = ahl_fail(err, AHL_EPARSE,
                          "deflated data ends at file offset %llu before the end of the "
                          "compressed stream",
                          (unsigned long long)pos);
            break;
        }
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            rc = ahl_fail(err, AHL_EPARSE, "deflated data is corrupt near file offset %llu: %s",
                          (unsigned long long)(pos - z.avail_in), z.msg ? z.msg : "inflate failed");
            break;
        }
        size_t got = sizeof outb - z.avail_out;
        total += got;
        if (total > IMPORT_MAX_INFLATED)
            rc = ahl_fail(err, AHL_ETOOBIG, "inflated dataset larger than 4 GB");
        else if (ahl_write_all(sfd, outb, got) < 0)
            rc = ahl_fail(err, AHL_EIO, "cannot write a scratch file");
    }
    inflateEnd(&z);
    if (rc < 0) {
        close(sfd);
        return rc;
    }
    *out_fd = sfd;
    return 0;
}

/* Frame i's bytes: the native slice (pread of one frame) or the frame's fragments concatenated.
 * whole/whole_len: the entire native value, read once, for 1-bit data whose frames need not start
 * on a byte boundary. */
static int frame_bytes(const struct ahl_dcm_pixel *px, const struct ahl_pixel_desc *d, int fd,
                       const struct ahl_frame_span *spans, const uint8_t *whole, size_t whole_len,
                       uint32_t i, uint8_t **out, size_t *len, struct ahl_err *err)
{
    int rc;
    *out = NULL;
    if (!px->encapsulated) {
        if (whole)
            return ahl_native_frame_extract(d, whole, whole_len, i, out, len, err);
        uint64_t fsz = ahl_native_frame_size(d);
        if (fsz == 0 || fsz > AHL_FRAME_MAX_BYTES)
            return ahl_fail(err, AHL_EPARSE, "pixel data: bad frame size");
        if ((uint64_t)(i + 1) * fsz > px->value_length)
            return ahl_fail(err, AHL_EPARSE,
                            "pixel data holds %llu bytes, too few for frame %u of %llu bytes",
                            (unsigned long long)px->value_length, i + 1, (unsigned long long)fsz);
        uint8_t *buf = malloc((size_t)fsz);
        if (!buf)
            return ahl_fail(err, AHL_ENOMEM, "out of memory for frame %u", i + 1);
        if ((rc = pread_full(fd, px->value_offset + (uint64_t)i * fsz, buf, (size_t)fsz)) < 0) {
            free(buf);
            return ahl_fail(err, rc, "pixel data of frame %u runs past the end of the file", i + 1);
        }
        rc = ahl_native_frame_extract(d, buf, (size_t)fsz, 0, out, len, err);
        free(buf);
        return rc;
    }
    return ahl_frames_gather(px, &spans[i], fd_read_fn, &fd, out, len, err);
}

/* One ImageFrames entry, keys in the order HealthImaging writes them. */
static json_t *frame_entry(const struct ahl_stored_frame *sf)
{
    json_t *o = json_object(), *levels = json_array();
    int bad = !o || !levels;
    for (size_t k = 0; !bad && k < sf->n_levels; k++) {
        json_t *l = json_object();
        bad = !l || json_array_append_new(levels, l) < 0;
        bad = bad || json_object_set_new(l, "Width", json_integer(sf->levels[k].width)) < 0;
        bad = bad || json_object_set_new(l, "Height", json_integer(sf->levels[k].height)) < 0;
        bad = bad || json_object_set_new(l, "Checksum", json_integer(sf->levels[k].checksum)) < 0;
    }
    bad = bad || json_object_set_new(o, "ID", json_string(sf->id)) < 0;
    bad = bad || json_object_set(o, "PixelDataChecksumFromBaseToFullResolution", levels) < 0;
    bad = bad || json_object_set_new(o, "MinPixelValue", json_integer(sf->min_pixel)) < 0;
    bad = bad || json_object_set_new(o, "MaxPixelValue", json_integer(sf->max_pixel)) < 0;
    bad = bad || json_object_set_new(o, "FrameSizeInBytes",
                                     json_integer((json_int_t)sf->frame_size_in_bytes)) < 0;
    json_decref(levels);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void ahl_import_budget_init(struct ahl_import_budget *b, uint64_t limit)
{
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->limit = limit ? limit : AHL_IMPORT_MEMORY_DEFAULT;
    b->used = 0;
}

void ahl_import_budget_release(struct ahl_import_budget *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

/* Reserves cost bytes of the importer's frame memory budget, waiting while other threads hold
 * too much of it. A frame that alone exceeds the budget can never run: AHL_ETOOBIG. */
static int budget_reserve(struct ahl_importer *im, uint64_t cost, uint32_t frame,
                          struct ahl_err *err)
{
    struct ahl_import_budget *b = im->budget;
    if (cost > b->limit)
        return ahl_fail(err, AHL_ETOOBIG,
                        "frame %u needs an estimated %llu MiB to transcode, more than the "
                        "import's memory budget of %llu MiB",
                        frame, (unsigned long long)(cost >> 20),
                        (unsigned long long)(b->limit >> 20));
    pthread_mutex_lock(&b->mu);
    while (b->used + cost > b->limit)
        pthread_cond_wait(&b->cv, &b->mu);
    b->used += cost;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static void budget_release(struct ahl_importer *im, uint64_t cost)
{
    if (!cost)
        return;
    struct ahl_import_budget *b = im->budget;
    pthread_mutex_lock(&b->mu);
    b->used -= cost;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Transcodes and stores every frame of f, recording them in the instance node inst. */
static int import_frames(struct ahl_importer *im, const struct ahl_dcm_file *f, int fd,
                         json_t *inst, struct ahl_import_result *res, struct ahl_err *err)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    struct ahl_pixel_desc d;
    struct ahl_frame_span *spans = NULL;
    struct ahl_stored_frame sf = {0};
    uint8_t *whole = NULL;
    size_t whole_len = 0;
    json_t *frames = NULL;
    char stored_ts[65] = "", photometric[17] = "";
    uint64_t reserved = 0; /* of the memory budget, by the frame in hand */
    int rc, sfd = -1, rfd = fd;

    if (px->tag != AHL_TAG_PIXEL_DATA)
        return ahl_fail(err, AHL_EUNSUPPORTED, "float pixel data (7FE0,%04X) is not supported",
                        px->tag & 0xFFFF);
    if ((rc = ahl_pixel_desc_from_dataset(&f->ds, f->transfer_syntax, &d, err)) < 0)
        return rc;
    if (f->deflated) {
        if ((rc = inflate_to_scratch(im, f, fd, &sfd, err)) < 0)
            return rc;
        rfd = sfd;
    }
    if (px->encapsulated) {
        if (!(spans = calloc(d.number_of_frames, sizeof *spans))) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = ahl_frames_map_fragments(px, d.number_of_frames, fd_read_fn, &rfd, spans,
                                           &res->invalid_offset_table, err)) < 0)
            goto out;
    } else if (d.bits_allocated == 1) {
        if (px->value_length > AHL_FRAME_MAX_BYTES) {
            rc = ahl_fail(err, AHL_ETOOBIG, "1-bit pixel data larger than 1 GiB");
            goto out;
        }
        whole_len = (size_t)px->value_length;
        if (!(whole = malloc(whole_len ? whole_len : 1))) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = pread_full(rfd, px->value_offset, whole, whole_len)) < 0) {
            rc = ahl_fail(err, rc, "pixel data runs past the end of the file");
            goto out;
        }
    }
    if (!(frames = json_array())) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < d.number_of_frames; i++) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        /* The frame's cost is known from its description and source size before it is read:
         * refuse it, or wait for its share of the budget, before spending anything on it. */
        uint64_t src_len = px->encapsulated ? spans[i].bytes : ahl_native_frame_size(&d);
        if ((rc = ahl_frame_cost_check(&d, src_len, &reserved, err)) < 0 ||
            (rc = budget_reserve(im, reserved, i + 1, err)) < 0) {
            reserved = 0;
            goto out;
        }
        if ((rc = frame_bytes(px, &d, rfd, spans, whole, whole_len, i, &bytes, &n, err)) < 0)
            goto out;
        rc = ahl_frame_transcode(&d, bytes, n, &sf, err);
        if (rc == 0)
            ahl_frame_id(sf.stored_transfer_syntax, sf.data, sf.len, sf.id);
        free(bytes);
        if (rc < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "frame %u: %.480s", i + 1, err ? err->msg : "");
            rc = ahl_fail_detail(err, rc, err ? err->detail : 0, "%s", msg);
            goto out;
        }
        if ((rc = ahl_framestore_put(&im->fs, sf.id, sf.data, sf.len, err)) < 0)
            goto out;
        json_t *e = frame_entry(&sf);
        if (!e || json_array_append_new(frames, e) < 0) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        set_str(stored_ts, sizeof stored_ts, sf.stored_transfer_syntax);
        set_str(photometric, sizeof photometric, sf.photometric);
        ahl_stored_frame_release(&sf);
        budget_release(im, reserved);
        reserved = 0;
        res->frames++;
    }
    /* Keys after DICOM/DICOMVRs in HealthImaging's order: StoredTransferSyntaxUID, ChecksumType,
     * ImageFrames (the normalizer's ImageFrames, with source sizes, is replaced). */
    json_object_del(inst, "ImageFrames");
    if ((stored_ts[0] &&
         json_object_set_new(inst, "StoredTransferSyntaxUID", json_string(stored_ts)) < 0) ||
        json_object_set_new(inst, "ChecksumType", json_string("DECOMPRESSED")) < 0 ||
        json_object_set(inst, "ImageFrames", frames) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    /* A decoder that converted YBR to RGB (as the codestream asked) stores RGB samples: the
     * instance must then describe what GetImageFrame returns. */
    json_t *dicom = json_object_get(inst, "DICOM");
    const char *pi = json_string_value(json_object_get(dicom, "PhotometricInterpretation"));
    if (photometric[0] && pi && strcmp(pi, photometric) != 0 &&
        json_object_set_new(dicom, "PhotometricInterpretation", json_string(photometric)) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    ahl_stored_frame_release(&sf);
    budget_release(im, reserved);
    json_decref(frames);
    free(whole);
    free(spans);
    if (sfd >= 0)
        close(sfd);
    return rc;
}

/* ---- stage 1 ------------------------------------------------------------------------------ */

/* The one series and one instance of a normalized single-instance document. */
static int doc_parts(json_t *doc, const char **study, const char **series, json_t **inst,
                     const char **sop)
{
    json_t *st = json_object_get(doc, "Study");
    json_t *ser = json_object_get(st, "Series");
    *study = json_string_value(json_object_get(json_object_get(st, "DICOM"), "StudyInstanceUID"));
    if (!json_is_object(ser) || json_object_size(ser) != 1 || !*study)
        return AHL_EINVAL;
    void *it = json_object_iter(ser);
    *series = json_object_iter_key(it);
    json_t *insts = json_object_get(json_object_iter_value(it), "Instances");
    if (!json_is_object(insts) || json_object_size(insts) != 1)
        return AHL_EINVAL;
    it = json_object_iter(insts);
    *sop = json_object_iter_key(it);
    *inst = json_object_iter_value(it);
    return json_is_object(*inst) ? 0 : AHL_EINVAL;
}

int ahl_import_prepare_fd(struct ahl_importer *im, int fd, const char *name,
                          struct ahl_import_item **out, struct ahl_import_result *res)
{
    struct ahl_dcm_file *f = NULL;
    struct ahl_import_item *it = NULL;
    struct ahl_err err;
    struct stat st;
    json_t *inst;
    int rc;
    (void)name;
    *out = NULL;
    res_init(res);
    ahl_err_clear(&err);
    if (fstat(fd, &st) == 0)
        res->bytes = (uint64_t)st.st_size;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        rc = ahl_fail(&err, AHL_EIO, "cannot seek: %s", strerror(errno));
        return res_fail(res, rc, &err, NULL);
    }
    if (!(it = calloc(1, sizeof *it))) {
        rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
        return res_fail(res, rc, &err, NULL);
    }
    if ((rc = ahl_p10_read_fd(fd, NULL, &f, &err)) < 0) {
        res_fail(res, rc, &err, NULL);
        goto out;
    }
    if ((rc = ahl_hi_normalize(f, &it->doc, &err)) < 0) {
        res_fail(res, rc, &err, NULL);
        goto out;
    }
    if ((rc = ahl_group_check_limits(it->doc, &err)) < 0 ||
        (rc = ahl_group_key(it->doc, it->key, &err)) < 0) {
        res_fail(res, rc, &err, NULL);
        goto out;
    }
    if (doc_parts(it->doc, &it->study_uid, &it->series_uid, &inst, &it->sop_uid) < 0) {
        rc = ahl_fail(&err, AHL_EINVAL, "the normalized document is not a single instance");
        res_fail(res, rc, &err, NULL);
        goto out;
    }
    set_str(res->sop_instance_uid, sizeof res->sop_instance_uid, it->sop_uid);
    if (f->pixel.present && (rc = import_frames(im, f, fd, inst, res, &err)) < 0) {
        res_fail(res, rc, &err, "pixel data: ");
        goto out;
    }
    it->res = *res;
    *out = it;
    it = NULL;
    rc = 0;
out:
    ahl_dcm_file_free(f);
    ahl_import_item_free(it);
    return rc;
}

int ahl_import_prepare_path(struct ahl_importer *im, const char *path, const char *name,
                            struct ahl_import_item **out, struct ahl_import_result *res)
{
    struct ahl_err err;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        res_init(res);
        int rc = ahl_fail(&err, AHL_EIO, "cannot open %s: %s", path, strerror(errno));
        res_fail(res, rc, &err, NULL);
        res_blame(res, true); /* the caller's path, not our disk */
        return rc;
    }
    int rc = ahl_import_prepare_fd(im, fd, name, out, res);
    close(fd);
    return rc;
}

void ahl_import_item_free(struct ahl_import_item *it)
{
    if (!it)
        return;
    json_decref(it->doc);
    free(it);
}

/* ---- serializing commits per grouping key --------------------------------------------------- */

static pthread_mutex_t stripe_mu[IMPORT_STRIPES];
static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

static void stripes_init(void)
{
    for (int i = 0; i < IMPORT_STRIPES; i++)
        pthread_mutex_init(&stripe_mu[i], NULL);
}

struct stripe_lock {
    unsigned idx;
    int fd;
};

/* Takes the stripe of (data store, key): the in-process mutex, then (with a lock directory) a
 * POSIX record lock on the stripe's file, which excludes other processes. The mutex makes the
 * record lock's per-process semantics harmless: one thread at a time holds a stripe file open. */
static void stripe_lock(struct ahl_importer *im, const char *key, struct stripe_lock *l)
{
    pthread_once(&stripe_once, stripes_init);
    uint32_t h = ahl_crc32(0, im->ds, strlen(im->ds));
    h = ahl_crc32(h, key, strlen(key));
    l->idx = h % IMPORT_STRIPES;
    l->fd = -1;
    pthread_mutex_lock(&stripe_mu[l->idx]);
    if (!im->lock_dir[0])
        return;
    char path[1200];
    snprintf(path, sizeof path, "%s/stripe-%02u", im->lock_dir, l->idx);
    l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (l->fd < 0)
        return; /* the in-process mutex still holds; other processes are then not excluded */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    while (fcntl(l->fd, F_SETLKW, &fl) < 0 && errno == EINTR)
        ;
}

static void stripe_unlock(struct stripe_lock *l)
{
    if (l->fd >= 0)
        close(l->fd); /* releases the record lock */
    pthread_mutex_unlock(&stripe_mu[l->idx]);
}

/* ---- stage 2: finding candidates ---------------------------------------------------------- */

struct cand_set {
    char id[AHL_ID_LEN + 1];
    uint64_t version;
    int64_t created_at_ms;
    bool is_primary;
};

struct cand_list {
    struct cand_set v[IMPORT_MAX_SETS];
    size_t n;
};

static int collect_set(void *ctx, const struct ahl_imageset_rec *rec)
{
    struct cand_list *l = ctx;
    if (l->n == IMPORT_MAX_SETS)
        return 1;
    struct cand_set *c = &l->v[l->n++];
    memcpy(c->id, rec->id, sizeof c->id);
    c->version = rec->latest_version;
    c->created_at_ms = rec->created_at_ms;
    c->is_primary = rec->is_primary;
    return 0;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand_set *x = a, *y = b;
    if (x->created_at_ms != y->created_at_ms)
        return x->created_at_ms < y->created_at_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* The image sets of the study holding series_uid that are primary (want_primary) or not, oldest
 * first. */
static int find_sets(struct ahl_importer *im, const char *study_uid, const char *series_uid,
                     bool want_primary, struct cand_list *out, struct ahl_err *err)
{
    struct ahl_store_tx *tx = NULL;
    struct ahl_search_row row;
    int rc;
    out->n = 0;
    if ((rc = ahl_store_begin(ahl_meta_store(im->m), false, &tx)) < 0)
        return ahl_fail(err, rc, "cannot read the store: %s", ahl_strerror(rc));
    rc = ahl_store_imageset_by_study(tx, im->ds, study_uid, want_primary, collect_set, out);
    if (rc < 0) {
        rc = ahl_fail(err, rc, "cannot list the study's image sets: %s", ahl_strerror(rc));
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (out->v[i].is_primary != want_primary)
            continue;
        rc = ahl_store_search_get(tx, out->v[i].id, &row);
        if (rc == AHL_ENOTFOUND)
            continue;
        if (rc < 0) {
            rc = ahl_fail(err, rc, "cannot read the search index: %s", ahl_strerror(rc));
            goto out;
        }
        if (strcmp(row.series_instance_uid, series_uid) != 0)
            continue;
        out->v[k++] = out->v[i];
    }
    out->n = k;
    qsort(out->v, out->n, sizeof out->v[0], cand_cmp);
    rc = 0;
out:
    ahl_store_rollback(tx);
    return rc;
}

/* The document of a set at a version with the Instances maps dropped: all that ahl_group_compare
 * looks at. */
static int load_candidate(struct ahl_importer *im, const struct cand_set *c, json_t **out,
                          struct ahl_err *err)
{
    json_t *doc = NULL;
    int rc = ahl_meta_document(im->m, im->ds, c->id, c->version, &doc, err);
    if (rc < 0)
        return rc;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, v)
        json_object_del(v, "Instances");
    *out = doc;
    return 0;
}

/* Merges the instance's Patient/Study/Series DICOM attributes into cand: only the missing ones
 * (overwrite false: the candidate used to compare later instances of a batch with what the set
 * will hold), or all of them (overwrite true: the document committed for a batch, merged the way
 * the engine merges an import into a stored set, so that the last instance's values win either
 * way and re-importing the same input changes nothing). */
static int absorb(json_t *cand, const json_t *inst_doc, const char *series_uid, bool overwrite)
{
    json_t *cst = json_object_get(cand, "Study"), *ist = json_object_get(inst_doc, "Study");
    json_t *dst[3] = {
        json_object_get(json_object_get(cand, "Patient"), "DICOM"),
        json_object_get(cst, "DICOM"),
        json_object_get(json_object_get(json_object_get(cst, "Series"), series_uid), "DICOM"),
    };
    json_t *src[3] = {
        json_object_get(json_object_get(inst_doc, "Patient"), "DICOM"),
        json_object_get(ist, "DICOM"),
        json_object_get(json_object_get(json_object_get(ist, "Series"), series_uid), "DICOM"),
    };
    /* Values are copied, not shared: a candidate outlives this item in the cache and is read by
     * other threads while the item's owner frees its document, and jansson's reference counts
     * are no synchronisation between threads. */
    for (int i = 0; i < 3; i++) {
        if (!dst[i] || !src[i])
            continue;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)src[i], key, v) {
            if (!overwrite && json_object_get(dst[i], key))
                continue;
            if (json_object_set_new(dst[i], key, json_deep_copy(v)) < 0)
                return AHL_ENOMEM;
        }
    }
    return 0;
}

/* A candidate built from the first instance of a new set: its document without Instances. */
static json_t *candidate_from(const struct ahl_import_item *it)
{
    json_t *c = json_deep_copy(it->doc);
    if (c)
        json_object_del(
            json_object_get(json_object_get(json_object_get(c, "Study"), "Series"), it->series_uid),
            "Instances");
    return c;
}

/* The document committed for items[0..n) of one series: their Patient/Study/Series attributes
 * merged in order (later ones win), and every instance. */
static json_t *put_document(struct ahl_import_item **items, size_t n)
{
    json_t *doc = json_deep_copy(items[0]->doc);
    const char *series_uid = items[0]->series_uid;
    json_t *ser =
        json_object_get(json_object_get(json_object_get(doc, "Study"), "Series"), series_uid);
    json_t *insts = json_object_get(ser, "Instances");
    if (!doc || !insts)
        goto fail;
    for (size_t i = 1; i < n; i++) {
        const char *sop;
        const char *st, *se;
        json_t *inst;
        if (absorb(doc, items[i]->doc, series_uid, true) < 0 ||
            doc_parts(items[i]->doc, &st, &se, &inst, &sop) < 0 ||
            json_object_set(insts, sop, inst) < 0)
            goto fail;
    }
    return doc;
fail:
    json_decref(doc);
    return NULL;
}

static void res_success(struct ahl_import_item *it, const struct ahl_meta_info *info, bool created,
                        bool unchanged)
{
    it->res.rc = 0;
    memcpy(it->res.imageset_id, info->set.id, sizeof it->res.imageset_id);
    it->res.version = info->ver.version ? info->ver.version : info->set.latest_version;
    it->res.is_primary = info->set.is_primary;
    it->res.created = created;
    it->res.unchanged = unchanged;
}

/* Puts items into set c (compare-and-set on c->version) or, with c NULL, creates a set. */
static int write_items(struct ahl_importer *im, struct ahl_import_item **items, size_t n,
                       const struct cand_set *c, bool primary, struct ahl_meta_info *out,
                       struct ahl_err *err)
{
    struct ahl_meta_info info;
    json_t *doc = put_document(items, n);
    int rc;
    if (!doc)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    memset(&info, 0, sizeof info);
    if (c) {
        rc = ahl_meta_imageset_put_instances(im->m, im->ds, c->id, doc, c->version, &info, err);
    } else {
        struct ahl_meta_create_opts o = {.is_primary = primary, .workflow_status = "IMPORTED"};
        rc = ahl_meta_imageset_create(im->m, im->ds, doc, &o, &info, err);
    }
    json_decref(doc);
    if (rc < 0)
        return rc;
    bool unchanged = c && info.ver.version == c->version;
    for (size_t i = 0; i < n; i++)
        res_success(items[i], &info, !c, unchanged);
    if (out)
        *out = info;
    return 0;
}

/* One conflicting instance: into a non-primary set of its series that agrees with it, else into a
 * new non-primary set. */
static int place_nonprimary(struct ahl_importer *im, struct ahl_import_item *it,
                            struct ahl_err *err)
{
    struct cand_list *l = malloc(sizeof *l);
    int rc = 0;
    if (!l)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    for (int attempt = 0; attempt < IMPORT_CAS_RETRIES; attempt++) {
        const struct cand_set *chosen = NULL;
        if ((rc = find_sets(im, it->study_uid, it->series_uid, false, l, err)) < 0)
            break;
        for (size_t i = 0; i < l->n && !chosen; i++) {
            json_t *cand = NULL;
            if ((rc = load_candidate(im, &l->v[i], &cand, err)) < 0)
                break;
            rc = ahl_group_compare(cand, it->doc, NULL, err);
            json_decref(cand);
            if (rc == AHL_GROUP_CONSISTENT)
                chosen = &l->v[i];
            else if (rc < 0)
                break;
            rc = 0;
        }
        if (rc < 0)
            break;
        rc = write_items(im, &it, 1, chosen, false, NULL, err);
        if (rc != AHL_ECONFLICT || !chosen)
            break;
    }
    free(l);
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void fail_items(struct ahl_import_item **items, size_t n, int rc, const struct ahl_err *e)
{
    for (size_t i = 0; i < n; i++)
        res_fail(&items[i]->res, rc, e, NULL);
}

/* Commits items of ONE grouping key with its stripe held. Fills each item's res. */
static void commit_group(struct ahl_importer *im, struct ahl_import_item **items, size_t n)
{
    struct ahl_import_item **ok = malloc(n * sizeof *ok), **bad = malloc(n * sizeof *bad);
    struct cand_list *l = malloc(sizeof *l);
    struct stripe_lock lk;
    struct ahl_err err;
    struct ahl_group_diff diff;
    int rc = 0;
    size_t nok = 0, nbad = 0;

    ahl_err_clear(&err);
    if (!ok || !bad || !l) {
        rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
        fail_items(items, n, rc, &err);
        goto out_nolock;
    }
    stripe_lock(im, items[0]->key, &lk);
    for (int attempt = 0; attempt < IMPORT_CAS_RETRIES; attempt++) {
        json_t *cand = NULL;
        const struct cand_set *primary = NULL;
        nok = nbad = 0;
        if ((rc = find_sets(im, items[0]->study_uid, items[0]->series_uid, true, l, &err)) < 0)
            break;
        if (l->n) {
            primary = &l->v[0];
            cand = cache_take(im, primary->id, primary->version);
            if (!cand && (rc = load_candidate(im, primary, &cand, &err)) < 0)
                break;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!cand) {
                if (!(cand = candidate_from(items[i])))
                    rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
                ok[nok++] = items[i];
                continue;
            }
            int c = ahl_group_compare(cand, items[i]->doc, &diff, &err);
            if (c == AHL_GROUP_CONSISTENT) {
                ok[nok++] = items[i];
                if (absorb(cand, items[i]->doc, items[i]->series_uid, false) < 0)
                    rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
            } else if (c == AHL_GROUP_CONFLICT) {
                bad[nbad++] = items[i];
                items[i]->res.n_warnings = 1;
                set_str(items[i]->res.warning_type, sizeof items[i]->res.warning_type,
                        "InconsistentWithPrimaryImageSet");
                snprintf(items[i]->res.warning, sizeof items[i]->res.warning,
                         "%s; the instance was put in a non-primary image set", diff.message);
            } else {
                res_fail(&items[i]->res, c, &err, NULL);
            }
        }
        if (rc < 0 || nok == 0) {
            json_decref(cand);
            break;
        }
        struct ahl_meta_info info;
        rc = write_items(im, ok, nok, primary, true, &info, &err);
        if (rc == 0) {
            /* The set now holds what the engine merged: every committed instance's attributes
             * over the candidate's, later ones winning. Keep that for the next batch. */
            for (size_t i = 0; i < nok && cand; i++)
                if (absorb(cand, ok[i]->doc, ok[i]->series_uid, true) < 0) {
                    json_decref(cand);
                    cand = NULL;
                }
            if (cand)
                cache_put(im, info.set.id, info.ver.version, cand);
            cand = NULL;
        }
        json_decref(cand);
        if (rc == AHL_ECONFLICT && primary) {
            sleep_ms(attempt < 4 ? 1 : 20); /* another writer advanced the set: look again */
            continue;
        }
        break;
    }
    if (rc < 0 && nok > 1) {
        /* One instance may spoil a batch (the engine refused it): place each one alone. */
        stripe_unlock(&lk);
        for (size_t i = 0; i < nok; i++)
            commit_group(im, &ok[i], 1);
        stripe_lock(im, items[0]->key, &lk);
        rc = 0;
    } else if (rc < 0) {
        fail_items(ok, nok, rc, &err);
    }
    if (rc < 0 && nok == 0)
        fail_items(items, n, rc, &err);
    for (size_t i = 0; i < nbad; i++) {
        ahl_err_clear(&err);
        if ((rc = place_nonprimary(im, bad[i], &err)) < 0)
            res_fail(&bad[i]->res, rc, &err, NULL);
    }
    stripe_unlock(&lk);
out_nolock:
    free(ok);
    free(bad);
    free(l);
}

int ahl_import_fd(struct ahl_importer *im, int fd, const char *name, struct ahl_import_result *res)
{
    struct ahl_import_item *it;
    if (ahl_import_prepare_fd(im, fd, name, &it, res) < 0)
        return res->rc;
    commit_group(im, &it, 1);
    *res = it->res;
    ahl_import_item_free(it);
    return res->rc;
}

int ahl_import_path(struct ahl_importer *im, const char *path, const char *name,
                    struct ahl_import_result *res)
{
    struct ahl_import_item *it;
    if (ahl_import_prepare_path(im, path, name, &it, res) < 0)
        return res->rc;
    commit_group(im, &it, 1);
    *res = it->res;
    ahl_import_item_free(it);
    return res->rc;
}

/* ---- batches ------------------------------------------------------------------------------ */

struct pend {
    struct ahl_import_item *it;
    void *tag;
};

struct group {
    char key[AHL_GROUP_KEY_LEN + 1];
    struct pend *v;
    size_t n, cap;
};

struct ahl_import_batch {
    struct ahl_importer *im;
    ahl_import_done_fn done;
    void *ctx;
    pthread_mutex_t mu;
    struct group g[IMPORT_MAX_GROUPS];
    size_t ng;
    size_t total; /* items pending in all groups */
};

int ahl_import_batch_new(struct ahl_importer *im, ahl_import_done_fn done, void *ctx,
                         struct ahl_import_batch **out)
{
    struct ahl_import_batch *b = calloc(1, sizeof *b);
    if (!b)
        return AHL_ENOMEM;
    b->im = im;
    b->done = done;
    b->ctx = ctx;
    pthread_mutex_init(&b->mu, NULL);
    *out = b;
    return 0;
}

static int pend_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct pend *)a)->tag;
    uintptr_t y = (uintptr_t)((const struct pend *)b)->tag;
    return x < y ? -1 : x > y;
}

/* Commits a detached group and reports each item. Items are committed in ascending tag order
 * whatever order the threads added them in, so that when several objects carry the same SOP
 * instance the one with the greatest tag (the last in input order, when tags are input indexes)
 * wins, and importing the same input twice gives the same content (no new version). */
static void group_commit(struct ahl_import_batch *b, struct group *g)
{
    struct ahl_import_item **items = malloc((g->n ? g->n : 1) * sizeof *items);
    qsort(g->v, g->n, sizeof g->v[0], pend_cmp);
    if (items) {
        for (size_t i = 0; i < g->n; i++)
            items[i] = g->v[i].it;
        commit_group(b->im, items, g->n);
    } else {
        struct ahl_err e;
        int rc = ahl_fail(&e, AHL_ENOMEM, "out of memory");
        for (size_t i = 0; i < g->n; i++)
            res_fail(&g->v[i].it->res, rc, &e, NULL);
    }
    for (size_t i = 0; i < g->n; i++) {
        if (b->done)
            b->done(b->ctx, g->v[i].tag, &g->v[i].it->res);
        ahl_import_item_free(g->v[i].it);
    }
    free(items);
    free(g->v);
    memset(g, 0, sizeof *g);
}

void ahl_import_batch_add(struct ahl_import_batch *b, struct ahl_import_item *it, void *tag)
{
    struct group ready[IMPORT_MAX_GROUPS + 1];
    size_t nready = 0;
    pthread_mutex_lock(&b->mu);
    struct group *g = NULL;
    for (size_t i = 0; i < b->ng && !g; i++)
        if (!strcmp(b->g[i].key, it->key))
            g = &b->g[i];
    if (!g && b->ng == IMPORT_MAX_GROUPS) {
        /* Too many series at once: commit everything pending (bounded memory). */
        memcpy(ready, b->g, b->ng * sizeof b->g[0]);
        nready = b->ng;
        b->ng = 0;
        b->total = 0;
    }
    if (!g) {
        g = &b->g[b->ng++];
        memset(g, 0, sizeof *g);
        memcpy(g->key, it->key, sizeof g->key);
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        struct pend *v = realloc(g->v, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&b->mu);
            struct group one = {.n = 1};
            struct pend p = {it, tag};
            memcpy(one.key, it->key, sizeof one.key);
            one.v = malloc(sizeof p);
            if (one.v) {
                one.v[0] = p;
                group_commit(b, &one);
            } else {
                struct ahl_err e;
                res_fail(&it->res, ahl_fail(&e, AHL_ENOMEM, "out of memory"), &e, NULL);
                if (b->done)
                    b->done(b->ctx, tag, &it->res);
                ahl_import_item_free(it);
            }
            goto commit_ready;
        }
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n].it = it;
    g->v[g->n].tag = tag;
    g->n++;
    b->total++;
    if (g->n < b->im->batch_max && b->total > IMPORT_MAX_PENDING) {
        /* Many series pending at once: commit the largest to bound memory. */
        for (size_t i = 0; i < b->ng; i++)
            if (b->g[i].n > g->n)
                g = &b->g[i];
    } else if (g->n < b->im->batch_max) {
        g = NULL;
    }
    if (g) {
        b->total -= g->n;
        ready[nready++] = *g;
        *g = b->g[--b->ng];
    }
    pthread_mutex_unlock(&b->mu);
commit_ready:
    for (size_t i = 0; i < nready; i++)
        group_commit(b, &ready[i]);
}

void ahl_import_batch_flush(struct ahl_import_batch *b)
{
    struct group ready[IMPORT_MAX_GROUPS];
    pthread_mutex_lock(&b->mu);
    size_t n = b->ng;
    memcpy(ready, b->g, n * sizeof b->g[0]);
    b->ng = 0;
    b->total = 0;
    pthread_mutex_unlock(&b->mu);
    for (size_t i = 0; i < n; i++)
        group_commit(b, &ready[i]);
}

void ahl_import_batch_free(struct ahl_import_batch *b)
{
    if (!b)
        return;
    ahl_import_batch_flush(b);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
