/* The canonical raw frame: allocation, the sample fix-ups every decoder ends with, geometry
 * checks, min/max, and the decoder dispatch by transfer syntax. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

int ahl__raw_frame_alloc(struct ahl_raw_frame *out, uint32_t width, uint32_t height,
                         uint16_t components, uint16_t precision, bool is_signed,
                         const char *photometric, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    if (width == 0 || height == 0 || width > AHL_FRAME_MAX_DIM || height > AHL_FRAME_MAX_DIM ||
        (components != 1 && components != 3) || precision < 1 || precision > 16)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "unsupported frame shape %ux%u, %u samples of %u bits", width, height,
                        components, precision);
    uint16_t bps = precision <= 8 ? 1 : 2;
    uint64_t len = (uint64_t)width * height * components * bps;
    if (len > AHL_FRAME_MAX_BYTES)
        return ahl_fail(err, AHL_ETOOBIG, "a %ux%u frame exceeds the frame size limit", width,
                        height);
    out->data = calloc(1, (size_t)len);
    if (!out->data)
        return ahl_fail(err, AHL_ENOMEM, "out of memory for a %llu-byte frame",
                        (unsigned long long)len);
    out->len = (size_t)len;
    out->width = width;
    out->height = height;
    out->components = components;
    out->bytes_per_sample = bps;
    out->precision = precision;
    out->is_signed = is_signed;
    return ahl__copy_field(out->photometric, sizeof out->photometric, photometric, err);
}

void ahl_raw_frame_release(struct ahl_raw_frame *f)
{
    if (!f)
        return;
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* One loop per container and signedness, without a branch per sample: this runs on every
 * decoded frame. (v ^ sign) - sign sign-extends v from the precision's top bit. */
void ahl__raw_frame_normalize(struct ahl_raw_frame *f)
{
    unsigned bits = f->bytes_per_sample * 8u;
    if (f->precision >= bits)
        return;
    uint32_t mask = (1u << f->precision) - 1, sign = f->is_signed ? 1u << (f->precision - 1) : 0;
    size_t n = f->len / f->bytes_per_sample;
    uint8_t *p = f->data;
    if (f->bytes_per_sample == 1) {
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)(((p[i] & mask) ^ sign) - sign);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (((uint32_t)(p[2 * i] | p[2 * i + 1] << 8) & mask) ^ sign) - sign;
            p[2 * i] = (uint8_t)v;
            p[2 * i + 1] = (uint8_t)(v >> 8);
        }
    }
}

int ahl__check_geometry(const struct ahl_pixel_desc *d, const char *codec, uint32_t width,
                        uint32_t height, uint32_t components, struct ahl_err *err)
{
    if (width != d->columns || height != d->rows || components != d->samples_per_pixel)
        return ahl_fail(err, AHL_EPARSE,
                        "%s codestream is %ux%u with %u components; the dataset says %ux%u with "
                        "%u samples per pixel",
                        codec, width, height, components, d->columns, d->rows,
                        d->samples_per_pixel);
    return 0;
}

void ahl_raw_frame_minmax(const struct ahl_raw_frame *f, int64_t *min, int64_t *max)
{
    size_t n = f->len / f->bytes_per_sample;
    const uint8_t *p = f->data;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    /* One loop per container and signedness, so that each vectorizes. */
    if (f->bytes_per_sample == 1 && f->is_signed) {
        for (size_t i = 0; i < n; i++) {
            int32_t v = (int8_t)p[i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    } else if (f->bytes_per_sample == 1) {
        for (size_t i = 0; i < n; i++) {
            int32_t v = p[i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    } else if (f->is_signed) {
        for (size_t i = 0; i < n; i++) {
            int32_t v = (int16_t)(uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int32_t v = p[2 * i] | p[2 * i + 1] << 8;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    if (n == 0)
        lo = hi = 0;
    *min = lo;
    *max = hi;
}

int ahl_frame_decode(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                     struct ahl_raw_frame *out, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = ahl_pixel_desc_check(d, err);
    if (rc < 0)
        return rc;
    switch (ahl_frame_codec_of(d->transfer_syntax)) {
    case AHL_CODEC_NATIVE:
        return ahl_decode_native(d, src, n, out, err);
    case AHL_CODEC_RLE:
        return ahl_decode_rle(d, src, n, out, err);
    case AHL_CODEC_JPEG:
        return ahl_decode_jpeg(d, src, n, out, err);
    case AHL_CODEC_JPEGLS:
        return ahl_decode_jpegls(d, src, n, out, err);
    case AHL_CODEC_J2K:
        return ahl_decode_j2k(d, src, n, 0, out, err);
    case AHL_CODEC_UNSUPPORTED:
        break;
    }
    return ahl_fail(err, AHL_EUNSUPPORTED, "transfer syntax %s not supported", d->transfer_syntax);
}

int ahl_raw_frame_to_native(const struct ahl_pixel_desc *d, const struct ahl_raw_frame *raw,
                            uint8_t *out, struct ahl_err *err)
{
    if (d->bits_allocated != 8 && d->bits_allocated != 16)
        return ahl_fail(err, AHL_EUNSUPPORTED, "native pixel data with BitsAllocated %u",
                        d->bits_allocated);
    size_t pixels = (size_t)d->rows * d->columns, spp = d->samples_per_pixel;
    size_t in_b = raw->bytes_per_sample, out_b = d->bits_allocated / 8;
    if (raw->width != d->columns || raw->height != d->rows || raw->components != spp ||
        in_b > out_b || raw->len != pixels * spp * in_b)
        return ahl_fail(err, AHL_ECORRUPT,
                        "a stored frame decodes to %ux%u with %u samples of %u bytes, not the "
                        "%ux%u with %zu samples the instance describes",
                        raw->width, raw->height, raw->components, raw->bytes_per_sample, d->columns,
                        d->rows, spp);
    if (strcmp(raw->photometric, d->photometric) != 0)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "a stored frame decodes to %s samples but the instance says %s",
                        raw->photometric, d->photometric);
    bool planar = spp > 1 && d->planar_configuration == 1;
    if (!planar && in_b == out_b) {
        memcpy(out, raw->data, raw->len);
        return 0;
    }
    for (size_t p = 0; p < pixels; p++) {
        for (size_t c = 0; c < spp; c++) {
            const uint8_t *s = raw->data + (p * spp + c) * in_b;
            uint16_t v = in_b == 2        ? (uint16_t)(s[0] | s[1] << 8)
                         : raw->is_signed ? (uint16_t)(int16_t)(int8_t)s[0]
                                          : s[0];
            uint8_t *o = out + (planar ? c * pixels + p : p * spp + c) * out_b;
            o[0] = (uint8_t)v;
            if (out_b == 2)
                o[1] = (uint8_t)(v >> 8);
        }
    }
    return 0;
}
