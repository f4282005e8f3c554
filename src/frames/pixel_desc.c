/* Describing pixel data: the Image Pixel module values read from a dataset and validated, the
 * codec behind each transfer syntax, native frame slicing, and matching encapsulated fragments to
 * frames. Everything a decoder needs to know before it looks at a single pixel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"
#include "base/text.h"

#include "base/banned.h"

int ahl__copy_field(char *dst, size_t cap, const char *src, struct ahl_err *err)
{
    if (ahl_str_copy(dst, cap, src) < 0)
        return ahl_fail(err, AHL_EINTERNAL, "'%.64s' does not fit a %zu-byte field", src, cap);
    return 0;
}

bool ahl__ts_is(const char *ts, const char *uid)
{
    size_t n = strlen(uid);
    if (!ts || strncmp(ts, uid, n) != 0)
        return false;
    for (const char *p = ts + n; *p; p++)
        if (*p != ' ')
            return false;
    return true;
}

enum ahl_frame_codec ahl_frame_codec_of(const char *ts)
{
    static const struct {
        const char *uid;
        enum ahl_frame_codec codec;
    } table[] = {
        {AHL_TS_IMPLICIT_LE, AHL_CODEC_NATIVE},
        {AHL_TS_EXPLICIT_LE, AHL_CODEC_NATIVE},
        {AHL_TS_DEFLATED_LE, AHL_CODEC_NATIVE},
        {AHL_TS_EXPLICIT_BE, AHL_CODEC_NATIVE},
        {AHL_TS_RLE, AHL_CODEC_RLE},
        {AHL_TS_JPEG_BASELINE, AHL_CODEC_JPEG},
        {AHL_TS_JPEG_EXTENDED, AHL_CODEC_JPEG},
        {AHL_TS_JPEG_LOSSLESS, AHL_CODEC_JPEG},
        {AHL_TS_JPEG_LOSSLESS_SV1, AHL_CODEC_JPEG},
        {AHL_TS_JPEGLS_LOSSLESS, AHL_CODEC_JPEGLS},
        {AHL_TS_JPEGLS_NEAR, AHL_CODEC_JPEGLS},
        {AHL_TS_J2K_LOSSLESS, AHL_CODEC_J2K},
        {AHL_TS_J2K, AHL_CODEC_J2K},
        {AHL_TS_HTJ2K_LOSSLESS, AHL_CODEC_J2K},
        {AHL_TS_HTJ2K_RPCL, AHL_CODEC_J2K},
        {AHL_TS_HTJ2K, AHL_CODEC_J2K},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (ahl__ts_is(ts, table[i].uid))
            return table[i].codec;
    return AHL_CODEC_UNSUPPORTED;
}

const char *ahl_frame_content_type(const char *ts)
{
    /* HealthImaging's GetImageFrame table (docs/frames.md#transfer-syntaxes,
     * docs/decisions.md#stored-syntaxes). */
    if (!ts || !*ts || ahl__ts_is(ts, AHL_TS_HTJ2K_RPCL))
        return "image/jph";
    if (ahl__ts_is(ts, AHL_TS_JPEG_BASELINE))
        return "image/jpeg";
    if (ahl__ts_is(ts, AHL_TS_J2K) || ahl__ts_is(ts, AHL_TS_J2K_LOSSLESS))
        return "image/j2c"; /* .4.90: docs/decisions.md#j2k-content-type */
    if (ahl__ts_is(ts, AHL_TS_HTJ2K))
        return "image/jphc";
    if (ahl__ts_is(ts, "1.2.840.10008.1.2.4.112"))
        return "image/jxl";
    return "application/octet-stream";
}

static int get_us(const struct ahl_dcm_dataset *ds, uint32_t tag, const char *name, bool required,
                  uint16_t dflt, uint16_t *out, struct ahl_err *err)
{
    const struct ahl_dcm_elem *e = ahl_dcm_find(ds, tag);
    if (!e || !e->value || e->value_len == 0) {
        if (required)
            return ahl_fail(err, AHL_EPARSE, "DICOM attribute %s is missing or empty", name);
        *out = dflt;
        return 0;
    }
    if (e->value_len < 2)
        return ahl_fail(err, AHL_EPARSE,
                        "DICOM attribute %s: expected a 2-byte US value, found %zu bytes", name,
                        e->value_len);
    *out = (uint16_t)(e->value[0] | (e->value[1] << 8));
    return 0;
}

/* Copies a text value without its padding (spaces and NULs) into dst. */
static void get_text(const struct ahl_dcm_elem *e, char *dst, size_t cap)
{
    size_t n = 0;
    if (e && e->value) {
        n = e->value_len;
        while (n > 0 && (e->value[n - 1] == ' ' || e->value[n - 1] == '\0'))
            n--;
        size_t start = 0;
        while (start < n && e->value[start] == ' ')
            start++;
        if (n - start >= cap)
            n = start + cap - 1;
        memcpy(dst, e->value + start, n - start);
        n -= start;
    }
    dst[n] = '\0';
}

int ahl_pixel_desc_from_dataset(const struct ahl_dcm_dataset *ds, const char *transfer_syntax,
                                struct ahl_pixel_desc *d, struct ahl_err *err)
{
    uint16_t rows = 0, cols = 0;
    int rc;
    memset(d, 0, sizeof *d);
    if ((rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0010), "Rows", true, 0, &rows, err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0011), "Columns", true, 0, &cols, err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0002), "SamplesPerPixel", true, 0,
                     &d->samples_per_pixel, err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0100), "BitsAllocated", true, 0, &d->bits_allocated,
                     err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0101), "BitsStored", true, 0, &d->bits_stored,
                     err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0102), "HighBit", false,
                     (uint16_t)(d->bits_stored ? d->bits_stored - 1 : 0), &d->high_bit, err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0103), "PixelRepresentation", true, 0,
                     &d->pixel_representation, err)) < 0 ||
        (rc = get_us(ds, AHL_DCM_TAG(0x0028, 0x0006), "PlanarConfiguration", false, 0,
                     &d->planar_configuration, err)) < 0)
        return rc;
    d->rows = rows;
    d->columns = cols;

    const struct ahl_dcm_elem *pi = ahl_dcm_find(ds, AHL_DCM_TAG(0x0028, 0x0004));
    get_text(pi, d->photometric, sizeof d->photometric);
    if (!d->photometric[0])
        return ahl_fail(err, AHL_EPARSE,
                        "DICOM attribute PhotometricInterpretation is missing or empty");

    d->number_of_frames = 1;
    const struct ahl_dcm_elem *nf = ahl_dcm_find(ds, AHL_DCM_TAG(0x0028, 0x0008));
    if (nf && nf->value && nf->value_len > 0) {
        char text[24];
        get_text(nf, text, sizeof text);
        char *end = NULL;
        errno = 0;
        long v = strtol(text, &end, 10);
        if (text[0] == '\0' || *end != '\0' || errno || v < 1 || v > 1000000)
            return ahl_fail(err, AHL_EPARSE,
                            "DICOM attribute NumberOfFrames: '%s' is not a frame count", text);
        d->number_of_frames = (uint32_t)v;
    }
    if (ahl_str_copy(d->transfer_syntax, sizeof d->transfer_syntax, transfer_syntax) < 0)
        return ahl_fail(err, AHL_EPARSE, "the transfer syntax UID is longer than %zu characters",
                        sizeof d->transfer_syntax - 1);
    /* A UID may be padded with a NUL or a space; keep the bare UID. */
    for (size_t i = strlen(d->transfer_syntax); i > 0 && d->transfer_syntax[i - 1] == ' '; i--)
        d->transfer_syntax[i - 1] = '\0';
    return ahl_pixel_desc_check(d, err);
}

static bool is_ybr422(const struct ahl_pixel_desc *d)
{
    return strcmp(d->photometric, "YBR_FULL_422") == 0 ||
           strcmp(d->photometric, "YBR_PARTIAL_422") == 0;
}

int ahl_pixel_desc_check(const struct ahl_pixel_desc *d, struct ahl_err *err)
{
    enum ahl_frame_codec codec = ahl_frame_codec_of(d->transfer_syntax);
    if (codec == AHL_CODEC_UNSUPPORTED)
        return ahl_fail(err, AHL_EUNSUPPORTED, "transfer syntax %s is not supported for pixel data",
                        d->transfer_syntax[0] ? d->transfer_syntax : "(none)");
    if (d->rows == 0 || d->columns == 0 || d->rows > AHL_FRAME_MAX_DIM ||
        d->columns > AHL_FRAME_MAX_DIM)
        return ahl_fail(err, AHL_EPARSE, "image size %ux%u: Rows and Columns must be 1..%u",
                        d->columns, d->rows, AHL_FRAME_MAX_DIM);
    if (d->samples_per_pixel != 1 && d->samples_per_pixel != 3)
        return ahl_fail(err, AHL_EUNSUPPORTED, "SamplesPerPixel %u is not supported (1 or 3)",
                        d->samples_per_pixel);
    if (d->bits_allocated != 1 && d->bits_allocated != 8 && d->bits_allocated != 16)
        return ahl_fail(err, AHL_EUNSUPPORTED, "BitsAllocated %u is not supported (1, 8 or 16)",
                        d->bits_allocated);
    if (d->bits_stored < 1 || d->bits_stored > d->bits_allocated)
        return ahl_fail(err, AHL_EPARSE, "BitsStored %u must be 1..BitsAllocated (%u)",
                        d->bits_stored, d->bits_allocated);
    if (d->high_bit != d->bits_stored - 1)
        return ahl_fail(err, AHL_EUNSUPPORTED, "HighBit %u is not BitsStored - 1 (%u)", d->high_bit,
                        d->bits_stored - 1);
    if (d->pixel_representation > 1)
        return ahl_fail(err, AHL_EPARSE, "PixelRepresentation %u must be 0 or 1",
                        d->pixel_representation);
    if (d->planar_configuration > 1)
        return ahl_fail(err, AHL_EPARSE, "PlanarConfiguration %u must be 0 or 1",
                        d->planar_configuration);
    if (d->number_of_frames < 1)
        return ahl_fail(err, AHL_EPARSE, "NumberOfFrames must be >= 1");
    if (d->bits_allocated == 1 && (codec != AHL_CODEC_NATIVE || d->samples_per_pixel != 1))
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "BitsAllocated 1 is supported for native single-sample data only");
    if (codec == AHL_CODEC_NATIVE && is_ybr422(d) &&
        (d->samples_per_pixel != 3 || d->columns % 2 != 0 || d->planar_configuration != 0))
        return ahl_fail(err, AHL_EPARSE,
                        "%s native data needs 3 samples, even Columns (%u) and "
                        "PlanarConfiguration 0",
                        d->photometric, d->columns);
    uint64_t raw = (uint64_t)d->rows * d->columns * d->samples_per_pixel * 2;
    if (raw > AHL_FRAME_MAX_BYTES)
        return ahl_fail(err, AHL_ETOOBIG, "a %ux%u frame exceeds the %zu-byte frame limit",
                        d->columns, d->rows, AHL_FRAME_MAX_BYTES);
    return 0;
}

struct ahl_pixel_desc ahl_pixel_desc_make(uint32_t rows, uint32_t columns,
                                          uint16_t samples_per_pixel, uint16_t bits_allocated,
                                          uint16_t bits_stored, uint16_t pixel_representation,
                                          const char *photometric, const char *transfer_syntax)
{
    struct ahl_pixel_desc d;
    memset(&d, 0, sizeof d);
    d.rows = rows;
    d.columns = columns;
    d.samples_per_pixel = samples_per_pixel;
    d.bits_allocated = bits_allocated;
    d.bits_stored = bits_stored;
    d.high_bit = (uint16_t)(bits_stored - 1);
    d.pixel_representation = pixel_representation;
    d.number_of_frames = 1;
    /* A value that does not fit leaves the field empty, which ahl_pixel_desc_check rejects. */
    if (ahl_str_copy(d.photometric, sizeof d.photometric, photometric) < 0)
        d.photometric[0] = '\0';
    if (ahl_str_copy(d.transfer_syntax, sizeof d.transfer_syntax, transfer_syntax) < 0)
        d.transfer_syntax[0] = '\0';
    return d;
}

uint64_t ahl_native_frame_size(const struct ahl_pixel_desc *d)
{
    uint64_t pixels = (uint64_t)d->rows * d->columns;
    if (d->bits_allocated == 1)
        return (pixels + 7) / 8;
    uint64_t samples = pixels * d->samples_per_pixel;
    if (d->samples_per_pixel == 3 && is_ybr422(d))
        samples = pixels * 2;
    return samples * (d->bits_allocated / 8);
}

int ahl_native_frame_extract(const struct ahl_pixel_desc *d, const uint8_t *pixel, size_t pixel_len,
                             uint32_t index, uint8_t **out, size_t *out_len, struct ahl_err *err)
{
    *out = NULL;
    *out_len = 0;
    uint64_t size = ahl_native_frame_size(d);
    if (size == 0 || index >= d->number_of_frames)
        return ahl_fail(err, AHL_EINVAL, "frame %u of %u: invalid frame", index + 1,
                        d->number_of_frames);
    uint8_t *buf = malloc(size);
    if (!buf)
        return ahl_fail(err, AHL_ENOMEM, "out of memory for a %llu-byte frame",
                        (unsigned long long)size);
    if (d->bits_allocated == 1) {
        /* Frames of 1-bit data follow each other bit by bit, so frame i starts at bit i*pixels. */
        uint64_t pixels = (uint64_t)d->rows * d->columns;
        uint64_t first = pixels * index, last_byte = (first + pixels + 7) / 8;
        if (last_byte > pixel_len) {
            free(buf);
            return ahl_fail(err, AHL_EPARSE, "pixel data holds %zu bytes; frame %u needs %llu",
                            pixel_len, index + 1, (unsigned long long)last_byte);
        }
        memset(buf, 0, size);
        for (uint64_t i = 0; i < pixels; i++) {
            uint64_t bit = first + i;
            if (pixel[bit / 8] & (1u << (bit % 8)))
                buf[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    } else {
        uint64_t off = size * index;
        if (off + size > pixel_len) {
            free(buf);
            return ahl_fail(
                err, AHL_EPARSE, "pixel data holds %zu bytes; frame %u needs bytes %llu..%llu",
                pixel_len, index + 1, (unsigned long long)off, (unsigned long long)(off + size));
        }
        memcpy(buf, pixel + off, size);
    }
    *out = buf;
    *out_len = size;
    return 0;
}

/* ---- fragments to frames ---- */

static bool starts_frame(const uint8_t *b, size_t n)
{
    static const uint8_t jp2[] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20};
    if (n >= 2 && b[0] == 0xFF && b[1] == 0xD8)
        return true; /* JPEG, JPEG-LS */
    if (n >= 4 && b[0] == 0xFF && b[1] == 0x4F && b[2] == 0xFF && b[3] == 0x51)
        return true; /* J2K codestream */
    return n >= 8 && memcmp(b, jp2, 8) == 0;
}

int ahl_frames_map_fragments(const struct ahl_dcm_pixel *px, uint32_t nframes,
                             ahl_frames_read_fn read_fn, void *ctx, struct ahl_frame_span *spans,
                             bool *invalid_offset_table, struct ahl_err *err)
{
    size_t nf = px->n_fragments;
    bool unused_flag;
    if (!invalid_offset_table)
        invalid_offset_table = &unused_flag;
    *invalid_offset_table = false;
    if (!px->encapsulated)
        return ahl_fail(err, AHL_EINVAL, "pixel data is not encapsulated");
    if (nframes == 0 || nf == 0)
        return ahl_fail(err, AHL_EPARSE, "encapsulated pixel data has %zu fragments for %u frames",
                        nf, nframes);
    if (nf < nframes)
        return ahl_fail(err, AHL_EPARSE,
                        "encapsulated pixel data has %zu fragments, fewer than its %u frames", nf,
                        nframes);
    memset(spans, 0, sizeof *spans * nframes);

    /* 1. The Basic Offset Table, when it has one entry per frame. */
    if (px->n_offsets == nframes && px->offset_table) {
        uint64_t pos = 0;
        size_t frame = 0;
        bool ok = true;
        for (size_t f = 0; f < nf && ok; f++) {
            if (frame < nframes && px->offset_table[frame] == pos)
                spans[frame++].first = f;
            else if (frame == 0 || (frame < nframes && px->offset_table[frame] < pos))
                ok = false; /* the entry points inside a fragment, or the first is not 0 */
            if (ok) {
                spans[frame - 1].count++;
                spans[frame - 1].bytes += px->fragments[f].length;
            }
            pos += 8 + (uint64_t)px->fragments[f].length;
        }
        if (ok && frame == nframes)
            return 0;
        memset(spans, 0, sizeof *spans * nframes);
        /* A table that does not match the fragments is ignored, as toolkits do; fall through. */
        *invalid_offset_table = true;
    } else if (px->n_offsets > 0) {
        *invalid_offset_table = true; /* not one entry per frame */
    }

    /* 2. One fragment per frame. */
    if (nf == nframes) {
        for (size_t i = 0; i < nf; i++) {
            spans[i].first = i;
            spans[i].count = 1;
            spans[i].bytes = px->fragments[i].length;
        }
        return 0;
    }

    /* A single frame is every fragment. */
    if (nframes == 1) {
        spans[0].first = 0;
        spans[0].count = nf;
        for (size_t i = 0; i < nf; i++)
            spans[0].bytes += px->fragments[i].length;
        return 0;
    }

    /* 3. Scan each fragment's first bytes for the start of a codestream. */
    if (!read_fn)
        return ahl_fail(err, AHL_EPARSE, "%zu fragments for %u frames and no usable offset table",
                        nf, nframes);
    size_t frame = 0;
    for (size_t f = 0; f < nf; f++) {
        uint8_t head[8] = {0};
        size_t n = px->fragments[f].length < 8 ? px->fragments[f].length : 8;
        int rc = n ? read_fn(ctx, px->fragments[f].offset, head, n) : 0;
        if (rc < 0)
            return ahl_fail(err, rc, "reading fragment %zu at offset %llu failed", f + 1,
                            (unsigned long long)px->fragments[f].offset);
        if (starts_frame(head, n) || f == 0) {
            if (frame == nframes)
                return ahl_fail(err, AHL_EPARSE,
                                "fragment %zu starts a codestream beyond the %u frames", f + 1,
                                nframes);
            spans[frame].first = f;
            frame++;
        }
        spans[frame - 1].count++;
        spans[frame - 1].bytes += px->fragments[f].length;
    }
    if (frame != nframes)
        return ahl_fail(err, AHL_EPARSE, "found %zu codestreams in %zu fragments for %u frames",
                        frame, nf, nframes);
    return 0;
}

int ahl_frames_gather(const struct ahl_dcm_pixel *px, const struct ahl_frame_span *span,
                      ahl_frames_read_fn read_fn, void *ctx, uint8_t **out, size_t *len,
                      struct ahl_err *err)
{
    *out = NULL;
    *len = 0;
    if (span->first > px->n_fragments || span->count > px->n_fragments - span->first)
        return ahl_fail(err, AHL_EINVAL, "fragment span %zu+%zu outside %zu fragments", span->first,
                        span->count, px->n_fragments);
    uint64_t total = 0;
    for (size_t k = 0; k < span->count; k++)
        total += px->fragments[span->first + k].length;
    if (total > AHL_FRAME_MAX_BYTES)
        return ahl_fail(err, AHL_ETOOBIG,
                        "a frame of %llu encoded bytes exceeds the frame size limit",
                        (unsigned long long)total);
    uint8_t *buf = malloc(total ? (size_t)total : 1);
    if (!buf)
        return ahl_fail(err, AHL_ENOMEM, "out of memory for a %llu-byte frame",
                        (unsigned long long)total);
    size_t pos = 0;
    for (size_t k = 0; k < span->count; k++) {
        const struct ahl_dcm_fragment *fr = &px->fragments[span->first + k];
        int rc = fr->length ? read_fn(ctx, fr->offset, buf + pos, fr->length) : 0;
        if (rc < 0) {
            free(buf);
            if (rc == AHL_EPARSE) /* a short read: the fragment runs past the end of the input */
                return ahl_fail(err, rc,
                                "pixel data fragment %zu (%u bytes at offset %llu) runs past the "
                                "end of the file",
                                span->first + k + 1, fr->length, (unsigned long long)fr->offset);
            return ahl_fail(err, rc,
                            "reading pixel data fragment %zu (%u bytes at offset %llu) failed",
                            span->first + k + 1, fr->length, (unsigned long long)fr->offset);
        }
        pos += fr->length;
    }
    *out = buf;
    *len = pos;
    return 0;
}
