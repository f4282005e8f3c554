/* Stage 1 of an import: one DICOM object read and normalized into a single-instance document,
 * its frames decoded, transcoded and stored within the frame memory budget. */
#include "import/import_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/fileio.h"
#include "base/text.h"
#include "dicom/normalize.h"
#include "dicom/p10.h"
#include "frames/frames.h"
#include "import/mapping.h"
#include "base/banned.h"

/* ---- reading frames ----------------------------------------------------------------------- */

static int fd_read_fn(void *ctx, uint64_t off, void *buf, size_t n)
{
    return ahl_pread_all(*(int *)ctx, buf, n, (off_t)off, NULL);
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
        if ((rc = ahl_pread_all(fd, in, n, (off_t)pos, NULL)) < 0)
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
        if ((rc = ahl_pread_all(fd, buf, (size_t)fsz, (off_t)(px->value_offset + (uint64_t)i * fsz),
                                NULL)) < 0) {
            free(buf);
            return ahl_fail(err, rc, "pixel data of frame %u runs past the end of the file", i + 1);
        }
        *out = buf; /* frames of 8 or more bits start on a byte: the slice is the frame */
        *len = (size_t)fsz;
        return 0;
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

/* Transcodes and writes every frame of f, recording them in the instance node inst and the
 * ticket of the last write in *ticket. */
static int import_frames(struct ahl_importer *im, const struct ahl_dcm_file *f, int fd,
                         json_t *inst, struct ahl_import_result *res, uint64_t *ticket,
                         struct ahl_err *err)
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
        if ((rc = ahl_pread_all(rfd, whole, whole_len, (off_t)px->value_offset, NULL)) < 0) {
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
        if ((rc = ahl_frame_cost_check_as(&d, src_len, im->format, &reserved, err)) < 0 ||
            (rc = budget_reserve(im, reserved, i + 1, err)) < 0) {
            reserved = 0;
            goto out;
        }
        if ((rc = frame_bytes(px, &d, rfd, spans, whole, whole_len, i, &bytes, &n, err)) < 0)
            goto out;
        rc = ahl_import_transcode_frame(&d, bytes, n, im->format, i + 1, &sf, err);
        free(bytes);
        if (rc < 0)
            goto out;
        if ((rc = ahl_framestore_write(&im->fs, &im->sync, sf.id, sf.data, sf.len, ticket, err)) <
            0)
            goto out;
        json_t *e = frame_entry(&sf);
        if (!e || json_array_append_new(frames, e) < 0) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        ahl_str_copy_cut(stored_ts, sizeof stored_ts, sf.stored_transfer_syntax);
        ahl_str_copy_cut(photometric, sizeof photometric, sf.photometric);
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

int ahl_import_transcode_frame(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                               enum ahl_lossless_format fmt, uint32_t frame,
                               struct ahl_stored_frame *sf, struct ahl_err *err)
{
    int rc = ahl_frame_transcode_as(d, src, n, fmt, sf, err);
    if (rc == 0) {
        ahl_frame_id(sf->stored_transfer_syntax, sf->data, sf->len, sf->id);
        return 0;
    }
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "frame %u: %.480s", frame, err ? err->msg : "");
    return ahl_fail_detail(err, rc, err ? err->detail : 0, "%s", msg);
}

/* ---- bulk data ---------------------------------------------------------------------------- */

/* The binary VRs whose large top-level values are kept as bulk data objects, and their value
 * sizes (for byte-swapping a big-endian file's bytes). */
static unsigned bulk_vr_size(const char *vr)
{
    static const struct {
        const char *vr;
        unsigned size;
    } vrs[] = {{"OB", 1}, {"UN", 1}, {"OW", 2}, {"OF", 4}, {"OL", 4}, {"OD", 8}, {"OV", 8}};
    for (size_t i = 0; i < sizeof vrs / sizeof vrs[0]; i++)
        if (!strcmp(vr, vrs[i].vr))
            return vrs[i].size;
    return 0;
}

/* Stores each top-level binary value the reader left in the file (larger than its inline
 * limit; pixel data excepted) in the frame store under its content id, and lists it in the
 * instance node's "BulkData" map: {"GGGGEEEE": {"ID", "VR", "Length"}}. Values inside sequences
 * and values over AHL_FRAMESTORE_MAX_BYTES stay left out, as the normalizer leaves them. Each
 * value is read whole within the importer's memory budget. */
static int import_bulk(struct ahl_importer *im, const struct ahl_dcm_file *f, int fd, json_t *inst,
                       uint64_t *ticket, struct ahl_err *err)
{
    json_t *bulk = NULL;
    int rc = 0, sfd = -1, rfd = fd;
    for (size_t i = 0; rc == 0 && i < f->ds.n; i++) {
        const struct ahl_dcm_elem *e = &f->ds.elems[i];
        unsigned size = bulk_vr_size(e->vr);
        if (e->value || e->items || !size || e->length == AHL_DCM_UNDEFINED_LENGTH ||
            e->length == 0 || e->length > AHL_FRAMESTORE_MAX_BYTES ||
            e->length > im->budget->limit || e->length % size || e->tag == AHL_TAG_PIXEL_DATA ||
            e->tag == AHL_TAG_FLOAT_PIXEL_DATA || e->tag == AHL_TAG_DOUBLE_FLOAT_PIXEL_DATA)
            continue;
        if (f->deflated && sfd < 0) {
            if ((rc = inflate_to_scratch(im, f, fd, &sfd, err)) < 0)
                break;
            rfd = sfd;
        }
        if ((rc = budget_reserve(im, e->length, 0, err)) < 0)
            break;
        uint8_t *v = malloc(e->length);
        char id[33], key[9];
        if (!v)
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        else if ((rc = ahl_pread_all(rfd, v, e->length, (off_t)e->value_offset, NULL)) < 0)
            rc = ahl_fail(err, rc, "value of (%04X,%04X) runs past the end of the file",
                          AHL_DCM_GROUP(e->tag), AHL_DCM_ELEMENT(e->tag));
        for (size_t k = 0; rc == 0 && f->big_endian && size > 1 && k < e->length; k += size)
            for (unsigned a = 0, b = size - 1; a < b; a++, b--) {
                uint8_t t = v[k + a];
                v[k + a] = v[k + b];
                v[k + b] = t;
            }
        if (rc == 0) {
            ahl_frame_id(AHL_TS_EXPLICIT_LE, v, e->length, id);
            rc = ahl_framestore_write(&im->fs, &im->sync, id, v, e->length, ticket, err);
        }
        free(v);
        budget_release(im, e->length);
        snprintf(key, sizeof key, "%08X", e->tag);
        if (rc == 0 && ((!bulk && (!(bulk = json_object()) ||
                                   json_object_set_new(inst, "BulkData", bulk) < 0)) ||
                        json_object_set_new(bulk, key,
                                            json_pack("{s:s,s:s,s:I}", "ID", id, "VR", e->vr,
                                                      "Length", (json_int_t)e->length)) < 0))
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    if (sfd >= 0)
        close(sfd);
    return rc;
}

/* ---- stage 1 ------------------------------------------------------------------------------ */

/* The one series and one instance of a normalized single-instance document. */
int ahl__import_doc_parts(json_t *doc, const char **study, const char **series, json_t **inst,
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

int ahl_import_prepare_fd_of_study(struct ahl_importer *im, int fd, const char *name,
                                   const char *study, struct ahl_import_item **out,
                                   struct ahl_import_result *res)
{
    struct ahl_dcm_file *f = NULL;
    struct ahl_import_item *it = NULL;
    struct ahl_err err;
    struct stat st;
    json_t *inst;
    int rc;
    (void)name;
    *out = NULL;
    ahl__import_res_init(res);
    ahl_err_clear(&err);
    if (fstat(fd, &st) == 0)
        res->bytes = (uint64_t)st.st_size;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        rc = ahl_fail(&err, AHL_EIO, "cannot seek: %s", strerror(errno));
        return ahl__import_res_fail(res, rc, &err, NULL);
    }
    if (!(it = calloc(1, sizeof *it))) {
        rc = ahl_fail(&err, AHL_ENOMEM, "out of memory");
        return ahl__import_res_fail(res, rc, &err, NULL);
    }
    if ((rc = ahl_p10_read_fd(fd, NULL, &f, &err)) < 0) {
        ahl__import_res_fail(res, rc, &err, NULL);
        goto out;
    }
    if ((rc = ahl_hi_normalize(f, &it->doc, &err)) < 0) {
        ahl__import_res_fail(res, rc, &err, NULL);
        goto out;
    }
    if ((rc = ahl_mapping_set_apply(im->mappings, it->doc, &err)) < 0) {
        ahl__import_res_fail(res, rc, &err, NULL);
        goto out;
    }
    if ((rc = ahl_group_check_limits(it->doc, &err)) < 0 ||
        (rc = ahl_group_key(it->doc, it->key, &err)) < 0) {
        ahl__import_res_fail(res, rc, &err, NULL);
        goto out;
    }
    if (ahl__import_doc_parts(it->doc, &it->study_uid, &it->series_uid, &inst, &it->sop_uid) < 0) {
        rc = ahl_fail(&err, AHL_EINVAL, "the normalized document is not a single instance");
        ahl__import_res_fail(res, rc, &err, NULL);
        goto out;
    }
    ahl_str_copy_cut(res->sop_instance_uid, sizeof res->sop_instance_uid, it->sop_uid);
    ahl_str_copy_cut(res->study_instance_uid, sizeof res->study_instance_uid, it->study_uid);
    ahl_str_copy_cut(res->series_instance_uid, sizeof res->series_instance_uid, it->series_uid);
    const char *sop_class =
        json_string_value(json_object_get(json_object_get(inst, "DICOM"), "SOPClassUID"));
    ahl_str_copy_cut(res->sop_class_uid, sizeof res->sop_class_uid, sop_class ? sop_class : "");
    if (study && strcmp(study, it->study_uid) != 0) {
        rc = ahl_fail(&err, AHL_ECONFLICT,
                      "the instance belongs to study %.64s, not to study %.64s that the request "
                      "names",
                      it->study_uid, study);
        ahl__import_res_fail(res, rc, &err, NULL);
        goto out;
    }
    it->written_ms = ahl_wall_ms();
    if (im->fs.s3) {
        if ((rc = ahl_meta_frame_fence_read(im->m, &it->fence_epoch, &it->fence_ms, &err)) < 0) {
            ahl__import_res_fail(res, rc, &err, NULL);
            goto out;
        }
        it->fenced = true;
    }
    if (f->pixel.present && (rc = import_frames(im, f, fd, inst, res, &it->ticket, &err)) < 0) {
        ahl__import_res_fail(res, rc, &err, "pixel data: ");
        goto out;
    }
    if ((rc = import_bulk(im, f, fd, inst, &it->ticket, &err)) < 0) {
        ahl__import_res_fail(res, rc, &err, NULL);
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

int ahl_import_prepare_fd(struct ahl_importer *im, int fd, const char *name,
                          struct ahl_import_item **out, struct ahl_import_result *res)
{
    return ahl_import_prepare_fd_of_study(im, fd, name, NULL, out, res);
}

int ahl_import_prepare_path(struct ahl_importer *im, const char *path, const char *name,
                            struct ahl_import_item **out, struct ahl_import_result *res)
{
    struct ahl_err err;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ahl__import_res_init(res);
        int rc = ahl_fail(&err, AHL_EIO, "cannot open %s: %s", path, strerror(errno));
        ahl__import_res_fail(res, rc, &err, NULL);
        ahl_import_result_blame(res, true); /* the caller's path, not our disk */
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
