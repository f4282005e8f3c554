/* One instance as a Part-10 file (export.h): the pixel data, made one frame at a time from the
 * frame store, handed to the Part-10 writer, which decodes nothing (dicom/ sits below frames/ and
 * blob/). Decoded frames are laid out as the instance's Image Pixel attributes describe them;
 * stored frames become one fragment each. */
#include "export/export.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom/hidoc.h"
#include "frames/frames.h"
#include "base/banned.h"

/* What the pixel callback needs for one instance. */
struct pixels {
    struct ahl_framestore *fs;
    const json_t *frames;    /* the instance's ImageFrames */
    const char *stored_ts;   /* StoredTransferSyntaxUID */
    struct ahl_pixel_desc d; /* the native layout to write (transfer syntax: explicit LE) */
    uint64_t frame_size;     /* native bytes per frame */
    bool encapsulate;        /* the stored bytes, one fragment a frame */
};

static const char *stored_syntax(const json_t *instance)
{
    const char *ts = json_string_value(json_object_get(instance, "StoredTransferSyntaxUID"));
    return ts && *ts ? ts : AHL_TS_HTJ2K_RPCL;
}

const char *ahl_export_transfer_syntax(const json_t *instance, bool stored)
{
    return stored ? stored_syntax(instance) : AHL_TS_EXPLICIT_LE;
}

/* Fills px from the instance's Image Pixel attributes; 0, or AHL_EUNSUPPORTED / AHL_EINVAL with
 * the reason in err. whole: the frames make one pixel data element, so NumberOfFrames must count
 * them (a frame on its own is laid out the same either way). */
static int describe(const json_t *inst, struct pixels *px, bool whole, struct ahl_err *err)
{
    const json_t *dicom = json_object_get(inst, "DICOM");
    const char *pi = json_string_value(json_object_get(dicom, "PhotometricInterpretation"));
    long rows = ahl_hidoc_int(dicom, "Rows", 0), cols = ahl_hidoc_int(dicom, "Columns", 0);
    long spp = ahl_hidoc_int(dicom, "SamplesPerPixel", 1);
    long ba = ahl_hidoc_int(dicom, "BitsAllocated", 0);
    long bs = ahl_hidoc_int(dicom, "BitsStored", ba);
    long pr = ahl_hidoc_int(dicom, "PixelRepresentation", 0);
    long nf = ahl_hidoc_int(dicom, "NumberOfFrames", 1);
    size_t n = json_array_size(px->frames);
    px->stored_ts = stored_syntax(inst);
    if (ba == 32)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "BitsAllocated 32 is not decoded; ask for the stored transfer syntax");
    if (rows <= 0 || rows > 65535 || cols <= 0 || cols > 65535 || spp < 1 || spp > 3 ||
        (ba != 1 && ba != 8 && ba != 16) || bs < 1 || bs > ba || pr < 0 || pr > 1 || !pi)
        return ahl_fail(err, AHL_EINVAL,
                        "the Image Pixel attributes (Rows, Columns, SamplesPerPixel, "
                        "BitsAllocated, BitsStored, PixelRepresentation, "
                        "PhotometricInterpretation) do not describe the stored frames");
    if (whole && (size_t)nf != n)
        return ahl_fail(err, AHL_EINVAL, "NumberOfFrames is %ld but %zu frames are stored", nf, n);
    if (strstr(pi, "422"))
        return ahl_fail(err, AHL_EUNSUPPORTED, "%s native pixel data is not written yet", pi);
    px->d = ahl_pixel_desc_make((uint32_t)rows, (uint32_t)cols, (uint16_t)spp, (uint16_t)ba,
                                (uint16_t)bs, (uint16_t)pr, pi, AHL_TS_EXPLICIT_LE);
    px->d.high_bit = (uint16_t)ahl_hidoc_int(dicom, "HighBit", bs - 1);
    px->d.planar_configuration = (uint16_t)ahl_hidoc_int(dicom, "PlanarConfiguration", 0);
    px->frame_size = ahl_native_frame_size(&px->d);
    if (!px->frame_size)
        return ahl_fail(err, AHL_EINVAL, "the Image Pixel attributes are not valid");
    if (ba == 1 && n > 1 && ((uint64_t)rows * cols * spp) % 8)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "multi-frame 1-bit pixel data whose frames do not end on a byte "
                        "boundary is not written yet");
    return 0;
}

/* One stored frame as native pixel data into native (px->frame_size bytes). */
static int to_native(const struct pixels *px, const uint8_t *data, size_t len, uint8_t *native,
                     struct ahl_err *err)
{
    if (!strcmp(px->stored_ts, AHL_TS_EXPLICIT_LE)) { /* 1-bit frames are kept so */
        if (len != px->frame_size)
            return ahl_fail(err, AHL_ECORRUPT, "a stored frame holds %zu bytes, not %" PRIu64, len,
                            px->frame_size);
        memcpy(native, data, len);
        return 0;
    }
    struct ahl_raw_frame raw = {0};
    struct ahl_pixel_desc sd = px->d;
    snprintf(sd.transfer_syntax, sizeof sd.transfer_syntax, "%s", px->stored_ts);
    sd.planar_configuration = 0;
    int rc = ahl_frame_decode(&sd, data, len, &raw, err);
    rc = rc ? rc : ahl_raw_frame_to_native(&px->d, &raw, native, err);
    ahl_raw_frame_release(&raw);
    return rc;
}

int ahl_export_frame_native(const json_t *instance, const uint8_t *stored, size_t n, uint8_t **out,
                            size_t *len, struct ahl_err *err)
{
    struct pixels px = {.frames = json_object_get(instance, "ImageFrames")};
    int rc = describe(instance, &px, false, err);
    if (rc < 0)
        return rc;
    if (!(*out = malloc((size_t)px.frame_size)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if ((rc = to_native(&px, stored, n, *out, err)) < 0) {
        free(*out);
        *out = NULL;
        return rc;
    }
    *len = (size_t)px.frame_size;
    return 0;
}

/* The pixel callback: one frame at a time, read, decoded or not, handed to the sink. */
static int write_frames(void *ctx, ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err)
{
    struct pixels *px = ctx;
    uint8_t *native = NULL;
    int rc = 0;
    if (!px->encapsulate && !(native = malloc((size_t)px->frame_size)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < json_array_size(px->frames); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(px->frames, i), "ID"));
        uint8_t *data = NULL;
        size_t len = 0;
        if (!id)
            rc = ahl_fail(err, AHL_ECORRUPT, "frame %zu has no ID", i + 1);
        else
            rc = ahl_framestore_read_verified(px->fs, id, px->stored_ts, &data, &len, err);
        if (rc == 0 && px->encapsulate) {
            rc = ahl_p10_fragment(sink, sink_ctx, data, len);
            if (rc == AHL_ETOOBIG)
                rc = ahl_fail(err, rc, "frame %zu of %zu bytes is too long", i + 1, len);
        } else if (rc == 0) {
            rc = to_native(px, data, len, native, err);
            rc = rc ? rc : sink(sink_ctx, native, (size_t)px->frame_size);
        }
        free(data);
    }
    free(native);
    return rc;
}

/* The stored syntax is native (frames kept as they came): written as such, not encapsulated. */
static bool native_syntax(const char *ts)
{
    return !strcmp(ts, AHL_TS_EXPLICIT_LE) || !strcmp(ts, AHL_TS_IMPLICIT_LE) ||
           !strcmp(ts, AHL_TS_EXPLICIT_BE) || !strcmp(ts, AHL_TS_DEFLATED_LE);
}

/* The instance's values kept as bulk data objects (its "BulkData" map), read from the frame store
 * (checked against their content ids) into extra as base64, with their VRs in extra's
 * "DICOMVRs". */
static int add_bulk(struct ahl_framestore *fs, const json_t *inst, json_t *extra,
                    struct ahl_err *err)
{
    const json_t *bulk = json_object_get(inst, "BulkData");
    const char *tag;
    json_t *e, *vrs = json_object();
    int rc = vrs && json_object_set_new(extra, "DICOMVRs", vrs) == 0
                 ? 0
                 : ahl_fail(err, AHL_ENOMEM, "out of memory");
    json_object_foreach((json_t *)bulk, tag, e)
    {
        const char *id = json_string_value(json_object_get(e, "ID"));
        const char *vr = json_string_value(json_object_get(e, "VR"));
        uint8_t *data = NULL;
        size_t len = 0;
        struct ahl_buf b;
        if (rc < 0)
            break;
        if (!id || !vr)
            return ahl_fail(err, AHL_ECORRUPT, "bulk data %s has no ID or VR", tag);
        if (!fs)
            return ahl_fail(err, AHL_ENOTFOUND, "no frame store holds bulk data %s", tag);
        if ((rc = ahl_framestore_read_verified(fs, id, AHL_TS_EXPLICIT_LE, &data, &len, err)) < 0)
            return rc;
        ahl_buf_init(&b, AHL_P10_MAX_HEADER);
        if (ahl_base64_encode(data, len, &b) < 0 || ahl_buf_add(&b, "", 1) < 0 ||
            json_object_set_new(extra, tag, json_string(b.data)) < 0 ||
            json_object_set_new(vrs, tag, json_string(vr)) < 0)
            rc = ahl_fail(err, AHL_ETOOBIG, "bulk data %s does not fit the file's header", tag);
        ahl_buf_release(&b);
        free(data);
    }
    return rc;
}

/* The instance's DICOM attributes to add: its bulk data values and the Original Attributes
 * Sequence, its document's items first. A new object, or NULL (with *rc) when there is nothing
 * to add. */
static json_t *extra_attributes(struct ahl_framestore *fs, const json_t *inst,
                                const json_t *originals, int *rc, struct ahl_err *err)
{
    *rc = 0;
    if (json_array_size(originals) == 0 && json_object_size(json_object_get(inst, "BulkData")) == 0)
        return NULL;
    json_t *extra = json_object();
    if (!extra || (*rc = add_bulk(fs, inst, extra, err)) < 0) {
        json_decref(extra);
        *rc = *rc ? *rc : ahl_fail(err, AHL_ENOMEM, "out of memory");
        return NULL;
    }
    if (json_array_size(originals) == 0)
        return extra;
    const json_t *had =
        json_object_get(json_object_get(inst, "DICOM"), "OriginalAttributesSequence");
    json_t *items = json_is_array(had) ? json_copy((json_t *)had) : json_array();
    if (!items || json_array_extend(items, (json_t *)originals) < 0 ||
        json_object_set(extra, "OriginalAttributesSequence", items) < 0) {
        json_decref(extra);
        extra = NULL;
        *rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    json_decref(items);
    return extra;
}

int ahl_export_instance(struct ahl_framestore *fs, const json_t *doc, const char *sop,
                        const struct ahl_export_opts *opts, ahl_p10_sink_fn sink, void *sink_ctx,
                        struct ahl_err *err)
{
    json_t *inst = NULL;
    if (ahl_p10_find_instance(doc, sop, NULL, &inst) < 0)
        return ahl_fail(err, AHL_ENOTFOUND, "no instance %s in the image set", sop);
    struct pixels px = {.fs = fs, .frames = json_object_get(inst, "ImageFrames")};
    struct ahl_p10_pixels p10px = {.write = write_frames, .ctx = &px};
    struct ahl_p10_opts o = {.transfer_syntax = AHL_TS_EXPLICIT_LE};
    bool has_pixels = json_array_size(px.frames) > 0;
    int rc;

    if (has_pixels && !fs)
        return ahl_fail(err, AHL_ENOTFOUND, "no frame store holds the frames of %s", sop);
    if (has_pixels && opts && opts->stored && !native_syntax(stored_syntax(inst))) {
        px.stored_ts = stored_syntax(inst);
        px.encapsulate = true;
        p10px.encapsulated = true;
        o.transfer_syntax = px.stored_ts;
    } else if (has_pixels) {
        if ((rc = describe(inst, &px, true, err)) < 0)
            return rc;
        uint64_t total = px.frame_size * json_array_size(px.frames);
        if (total >= 0xFFFFFFFEu)
            return ahl_fail(err, AHL_ETOOBIG,
                            "%" PRIu64 " bytes of native pixel data do not fit one element", total);
        p10px.length = total;
        memcpy(p10px.vr, px.d.bits_allocated > 8 ? "OW" : "OB", 3);
    }
    if (!(o.extra = extra_attributes(fs, inst, opts ? opts->originals : NULL, &rc, err)) && rc < 0)
        return rc;
    rc = ahl_p10_write_with(doc, sop, &o, has_pixels ? &p10px : NULL, sink, sink_ctx, err);
    json_decref((json_t *)o.extra);
    return rc;
}
