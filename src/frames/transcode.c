/* Import of one frame: decode the source, apply HealthImaging's storage policy (HTJ2K lossless, or
 * JPEG 2000 lossless in a data store created with that format, or the original bytes for the
 * syntaxes it keeps), prove the stored frame decodes to exactly the
 * source pixels, and compute the ImageFrames metadata (id, size, min/max, per-level checksums).
 * The policy itself is written down in frames.h.
 *
 * An HTJ2K encode is verified by ONE full-resolution decode (OpenJPH, htj2k_decode.cc), a JPEG 2000
 * encode by one with OpenJPEG (decode_j2k.c), compared with the source bit for bit; the checksums
 * of the lower resolution levels are computed from the pixels that decode proved
 * (level_checksums.c) instead of decoding the codestream once more per level. Frames kept as they
 * are (lossy J2K and HTJ2K) come from elsewhere and are decoded at each level with OpenJPEG. */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

/* HTJ2K wants the lowest resolution level to keep at least one pixel per side, and OpenJPEG
 * refuses more levels than that. */
uint32_t ahl__decompositions_for(uint32_t w, uint32_t h)
{
    uint32_t m = w < h ? w : h, d = 5;
    while (d > 0 && (m >> d) < 1)
        d--;
    return d;
}

/* What the encoders take: frames.h's canonical form. */
static bool canonical(const struct ahl_raw_frame *f)
{
    return f->data && f->width != 0 && f->height != 0 &&
           (f->components == 1 || f->components == 3) && f->precision >= 1 && f->precision <= 16 &&
           f->bytes_per_sample == (f->precision <= 8 ? 1 : 2) &&
           f->len == (size_t)f->width * f->height * f->components * f->bytes_per_sample;
}

int ahl_htj2k_encode(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                     struct ahl_err *err)
{
    *out = NULL;
    *out_len = 0;
    if (!canonical(f))
        return ahl_fail(err, AHL_EINVAL, "frame is not in canonical form");
    char msg[300] = "";
    int rc =
        ahl__ojph_encode(f->data, f->width, f->height, f->components, f->bytes_per_sample,
                         f->precision, f->is_signed, ahl__decompositions_for(f->width, f->height),
                         true, out, out_len, msg, sizeof msg);
    if (rc == -2)
        return ahl_fail(err, AHL_ENOMEM, "out of memory in the HTJ2K encoder");
    if (rc < 0)
        return ahl_fail(err, AHL_EINTERNAL, "HTJ2K encoding failed: %s", msg);
    return 0;
}

int ahl_j2k_encode(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                   struct ahl_err *err)
{
    *out = NULL;
    *out_len = 0;
    if (!canonical(f))
        return ahl_fail(err, AHL_EINVAL, "frame is not in canonical form");
    return ahl__j2k_encode(f, ahl__decompositions_for(f->width, f->height), out, out_len, err);
}

int ahl_lossless_format_parse(const char *name, enum ahl_lossless_format *out, struct ahl_err *err)
{
    if (!name || !*name || !strcmp(name, "HTJ2K"))
        *out = AHL_LOSSLESS_HTJ2K;
    else if (!strcmp(name, "JPEG_2000_LOSSLESS"))
        *out = AHL_LOSSLESS_J2K;
    else
        return ahl_fail(err, AHL_EINVAL,
                        "lossless storage format '%.40s' is neither HTJ2K nor JPEG_2000_LOSSLESS",
                        name);
    return 0;
}

const char *ahl_lossless_format_syntax(enum ahl_lossless_format fmt)
{
    return fmt == AHL_LOSSLESS_J2K ? AHL_TS_J2K_LOSSLESS : AHL_TS_HTJ2K_RPCL;
}

void ahl_stored_frame_release(struct ahl_stored_frame *f)
{
    if (!f)
        return;
    free(f->data);
    memset(f, 0, sizeof *f);
}

static uint32_t raw_crc(const struct ahl_raw_frame *f)
{
    return ahl_crc32(0, f->data, f->len);
}

/* The per-level checksums of a stored J2K/HTJ2K frame, decoded at each level. full, when given, is
 * the full-resolution decode already in hand, so the most expensive level is not decoded twice. */
static int wavelet_checksums(const struct ahl_pixel_desc *d, struct ahl_stored_frame *out,
                             const struct ahl_raw_frame *full, struct ahl_err *err)
{
    uint32_t nres = 0;
    int rc = ahl__j2k_resolutions(out->data, out->len, &nres, err);
    if (rc < 0)
        return rc;
    if (nres < 1 || nres > AHL_FRAME_MAX_LEVELS)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "stored codestream has %u resolution levels (1..%d supported)", nres,
                        AHL_FRAME_MAX_LEVELS);
    for (uint32_t i = 0; i < nres; i++) {
        uint32_t reduce = nres - 1 - i;
        if (reduce == 0 && full) {
            out->levels[i].width = full->width;
            out->levels[i].height = full->height;
            out->levels[i].checksum = raw_crc(full);
            continue;
        }
        struct ahl_raw_frame raw;
        rc = ahl_decode_j2k(d, out->data, out->len, reduce, &raw, err);
        if (rc < 0)
            return rc;
        out->levels[i].width = raw.width;
        out->levels[i].height = raw.height;
        out->levels[i].checksum = raw_crc(&raw);
        ahl_raw_frame_release(&raw);
    }
    out->n_levels = nres;
    return 0;
}

int ahl_stored_frame_checksums(const struct ahl_pixel_desc *d, struct ahl_stored_frame *out,
                               struct ahl_err *err)
{
    out->n_levels = 0;
    if (!ahl__ts_is(out->stored_transfer_syntax, AHL_TS_HTJ2K_RPCL) &&
        !ahl__ts_is(out->stored_transfer_syntax, AHL_TS_J2K_LOSSLESS) &&
        !ahl__ts_is(out->stored_transfer_syntax, AHL_TS_J2K) &&
        !ahl__ts_is(out->stored_transfer_syntax, AHL_TS_HTJ2K)) {
        /* Not a wavelet codestream: one level, the full-size decode. */
        struct ahl_pixel_desc sd = *d;
        struct ahl_raw_frame raw;
        int rc = ahl__copy_field(sd.transfer_syntax, sizeof sd.transfer_syntax,
                                 out->stored_transfer_syntax, err);
        if (rc == 0)
            rc = ahl_frame_decode(&sd, out->data, out->len, &raw, err);
        if (rc < 0)
            return rc;
        out->levels[0].width = raw.width;
        out->levels[0].height = raw.height;
        out->levels[0].checksum = raw_crc(&raw);
        out->n_levels = 1;
        ahl_raw_frame_release(&raw);
        return 0;
    }
    return wavelet_checksums(d, out, NULL, err);
}

uint64_t ahl_frame_transcode_cost_as(const struct ahl_pixel_desc *d, uint64_t src_len,
                                     enum ahl_lossless_format fmt)
{
    uint64_t samples = (uint64_t)d->rows * d->columns * d->samples_per_pixel;
    if (samples == 0)
        return 0;
    if (d->bits_allocated == 1) /* copied as they are: the source and the stored copy */
        return src_len + ahl_native_frame_size(d);
    uint64_t raw = samples * (d->bits_stored > 8 || d->bits_allocated > 8 ? 2 : 1);
    return src_len + 2 * raw + (fmt == AHL_LOSSLESS_J2K ? 12 : 6) * samples;
}

uint64_t ahl_frame_transcode_cost(const struct ahl_pixel_desc *d, uint64_t src_len)
{
    return ahl_frame_transcode_cost_as(d, src_len, AHL_LOSSLESS_HTJ2K);
}

int ahl_frame_cost_check_as(const struct ahl_pixel_desc *d, uint64_t src_len,
                            enum ahl_lossless_format fmt, uint64_t *cost, struct ahl_err *err)
{
    uint64_t c = ahl_frame_transcode_cost_as(d, src_len, fmt);
    if (cost)
        *cost = c;
    if (c > AHL_FRAME_MAX_COST)
        return ahl_fail(err, AHL_ETOOBIG,
                        "a %ux%u frame of %u samples needs an estimated %llu MiB to decode and "
                        "verify; at most %llu MiB per frame are supported",
                        d->columns, d->rows, d->samples_per_pixel, (unsigned long long)(c >> 20),
                        (unsigned long long)(AHL_FRAME_MAX_COST >> 20));
    return 0;
}

/* Source syntaxes HealthImaging keeps as they are (frames.h, storage policy). */
static bool stored_as_is(const struct ahl_pixel_desc *d)
{
    return ahl__ts_is(d->transfer_syntax, AHL_TS_JPEG_BASELINE) ||
           ahl__ts_is(d->transfer_syntax, AHL_TS_J2K) ||
           ahl__ts_is(d->transfer_syntax, AHL_TS_HTJ2K);
}

static int transcode_1bit(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                          struct ahl_stored_frame *out, struct ahl_err *err)
{
    uint64_t pixels = (uint64_t)d->rows * d->columns, size = ahl_native_frame_size(d);
    if (n < size)
        return ahl_fail(err, AHL_EPARSE, "1-bit frame holds %zu bytes; %ux%u needs %llu", n,
                        d->columns, d->rows, (unsigned long long)size);
    out->data = malloc(size ? size : 1);
    if (!out->data)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    memcpy(out->data, src, size);
    /* Bits past the last pixel belong to no pixel; clear them so equal frames are equal bytes. */
    if (pixels % 8)
        out->data[size - 1] &= (uint8_t)((1u << (pixels % 8)) - 1);
    out->len = size;
    int rc = ahl__copy_field(out->stored_transfer_syntax, sizeof out->stored_transfer_syntax,
                             AHL_TS_EXPLICIT_LE, err);
    if (rc == 0)
        rc = ahl__copy_field(out->photometric, sizeof out->photometric, d->photometric, err);
    if (rc < 0)
        return rc;
    bool any0 = false, any1 = false;
    for (uint64_t i = 0; i < pixels; i++) {
        if (out->data[i / 8] & (1u << (i % 8)))
            any1 = true;
        else
            any0 = true;
    }
    out->min_pixel = any0 ? 0 : 1;
    out->max_pixel = any1 ? 1 : 0;
    out->levels[0].width = d->columns;
    out->levels[0].height = d->rows;
    out->levels[0].checksum = ahl_crc32(0, out->data, out->len);
    out->n_levels = 1;
    return 0;
}

/* Verifies an HTJ2K encode of raw (out->data) before anything is stored, and fills out's levels:
 * the full-resolution decode of what is about to be stored must be the source pixels, bit for
 * bit, and then the checksum of every level follows from those pixels. */
static int verify_htj2k(const struct ahl_raw_frame *raw, struct ahl_stored_frame *out,
                        struct ahl_err *err)
{
    uint32_t decompositions = 0;
    char msg[300] = "";
    int r = ahl__ojph_verify(out->data, out->len, raw->data, raw->len, raw->width, raw->height,
                             raw->components, raw->precision, raw->is_signed, &decompositions, msg,
                             sizeof msg);
    if (r == -2)
        return ahl_fail(err, AHL_ENOMEM, "out of memory in the HTJ2K decoder");
    if (r == -5)
        return ahl_fail(err, AHL_EINTERNAL,
                        "HTJ2K round trip is not bit-exact (%ux%u, %u samples of %u bits): %s",
                        raw->width, raw->height, raw->components, raw->precision, msg);
    if (r < 0)
        return ahl_fail(err, AHL_EINTERNAL, "HTJ2K verification decode failed: %s", msg);
    return ahl__htj2k_level_checksums(raw, decompositions, out, err);
}

/* The same for a JPEG 2000 encode (ahl_j2k_encode), with OpenJPEG. */
static int verify_j2k(const struct ahl_raw_frame *raw, struct ahl_stored_frame *out,
                      struct ahl_err *err)
{
    uint32_t decompositions = 0;
    int rc = ahl__j2k_verify(out->data, out->len, raw, &decompositions, err);
    return rc < 0 ? rc : ahl__htj2k_level_checksums(raw, decompositions, out, err);
}

int ahl_frame_transcode(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                        struct ahl_stored_frame *out, struct ahl_err *err)
{
    return ahl__frame_transcode_with(d, src, n, AHL_LOSSLESS_HTJ2K, NULL, out, err);
}

int ahl_frame_transcode_as(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                           enum ahl_lossless_format fmt, struct ahl_stored_frame *out,
                           struct ahl_err *err)
{
    return ahl__frame_transcode_with(d, src, n, fmt, NULL, out, err);
}

int ahl__frame_transcode_with(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                              enum ahl_lossless_format fmt, ahl__lossless_encode_fn encode,
                              struct ahl_stored_frame *out, struct ahl_err *err)
{
    bool j2k = fmt == AHL_LOSSLESS_J2K;
    if (!encode)
        encode = j2k ? ahl_j2k_encode : ahl_htj2k_encode;
    struct ahl_raw_frame raw = {0};
    memset(out, 0, sizeof *out);
    int rc = ahl_pixel_desc_check(d, err);
    if (rc < 0)
        return rc;
    if ((rc = ahl_frame_cost_check_as(d, n, fmt, NULL, err)) < 0)
        return rc;

    if (d->bits_allocated == 1) {
        rc = transcode_1bit(d, src, n, out, err);
        goto finish;
    }

    rc = ahl_frame_decode(d, src, n, &raw, err);
    if (rc < 0)
        goto out;
    ahl_raw_frame_minmax(&raw, &out->min_pixel, &out->max_pixel);
    if ((rc = ahl__copy_field(out->photometric, sizeof out->photometric, raw.photometric, err)) < 0)
        goto out;

    if (stored_as_is(d)) {
        out->data = malloc(n ? n : 1);
        if (!out->data) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(out->data, src, n);
        out->len = n;
        if ((rc = ahl__copy_field(out->stored_transfer_syntax, sizeof out->stored_transfer_syntax,
                                  d->transfer_syntax, err)) < 0)
            goto out;
        if (ahl__ts_is(d->transfer_syntax, AHL_TS_JPEG_BASELINE)) {
            out->levels[0].width = raw.width;
            out->levels[0].height = raw.height;
            out->levels[0].checksum = raw_crc(&raw);
            out->n_levels = 1;
        } else {
            rc = wavelet_checksums(d, out, &raw, err); /* raw: the stored bytes' own decode */
        }
        goto finish;
    }

    rc = encode(&raw, &out->data, &out->len, err);
    if (rc < 0)
        goto out;
    if ((rc = ahl__copy_field(out->stored_transfer_syntax, sizeof out->stored_transfer_syntax,
                              ahl_lossless_format_syntax(fmt), err)) < 0)
        goto out;

    rc = j2k ? verify_j2k(&raw, out, err) : verify_htj2k(&raw, out, err);

finish:
    if (rc < 0)
        goto out;
    out->frame_size_in_bytes = out->len;
    out->content_type = ahl_frame_content_type(out->stored_transfer_syntax);
out:
    ahl_raw_frame_release(&raw);
    if (rc < 0)
        ahl_stored_frame_release(out);
    return rc;
}
