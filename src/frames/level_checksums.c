/* The per-level checksums of a frame this module encoded (HTJ2K lossless, ahl_htj2k_encode),
 * computed from its full-resolution pixels, so that import decodes the stored codestream once
 * (the verification) instead of once per resolution level.
 *
 * Why the numbers are those of a reduced-resolution decode. The codestream holds the subbands of
 * the reversible 5/3 wavelet transform (ISO/IEC 15444-1 Annex F), integer lifting steps that map
 * an image to its subbands one to one; before it, the DC level shift (unsigned samples minus
 * 2^(precision-1)) and, for 3 samples, the reversible colour transform (RCT). The verification
 * decode proved that the codestream reconstructs the source exactly, so its subbands are exactly
 * the forward transform of the source. A decoder asked for the image reduced by r levels
 * (OpenJPEG's opj_set_decoded_resolution_factor, which the checksums are defined by) rebuilds the
 * LL band of decomposition level r, applies the inverse RCT to the three bands, adds the DC level
 * shift back and clamps each sample to the range of its precision. This file computes that LL
 * band with the forward transform, vertical then horizontal at each level as Annex F's 2D_SD
 * does, and applies the same steps after it. tests/unit/test_frames_codec.c compares the result
 * with OpenJPEG's decodes at every level over many shapes, depths and contents.
 *
 * The frame geometry is the encoder's: image and tile offsets 0 (so every band starts at an even
 * coordinate), one tile, no subsampling. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

/* floor(v / 2^k) for the lifting steps: an arithmetic shift (gcc and clang shift signed values
 * arithmetically). */
#define FLOOR_SHIFT(v, k) ((v) >> (k))

/* One forward 5/3 lifting pass over the n samples of a row starting at an even coordinate,
 * leaving the low-pass results at the even positions (the high-pass values at odd positions are
 * what the low-pass ones are computed from). n == 1 leaves the sample as it is. */
static void lift_1d(int32_t *a, uint32_t n)
{
    if (n < 2)
        return;
    /* Predict: d[k] = x[2k+1] - floor((x[2k] + x[2k+2]) / 2), x[n] mirrored to x[n-2]. */
    for (uint32_t i = 1; i < n; i += 2)
        a[i] -= FLOOR_SHIFT(a[i - 1] + (i + 1 < n ? a[i + 1] : a[i - 1]), 1);
    /* Update: s[k] = x[2k] + floor((d[k-1] + d[k] + 2) / 4), d[-1] mirrored to d[0] and a d past
     * the end to the last one. */
    for (uint32_t i = 0; i < n; i += 2) {
        int32_t left = i > 0 ? a[i - 1] : a[1], right = i + 1 < n ? a[i + 1] : a[i - 1];
        a[i] += FLOOR_SHIFT(left + right + 2, 2);
    }
}

/* One decomposition level of a w x h band held in plane p (row stride `stride`): leaves its LL
 * band, ceil(w/2) x ceil(h/2), in the top-left corner. The vertical pass runs row by row (each
 * step is the same for every column), then each low-pass row is transformed horizontally and its
 * even samples are moved to their place in the LL band. */
static void forward_level(int32_t *p, size_t stride, uint32_t w, uint32_t h)
{
    if (h >= 2) {
        for (uint32_t y = 1; y < h; y += 2) {
            int32_t *row = p + y * stride, *up = row - stride;
            int32_t *down = y + 1 < h ? row + stride : up;
            for (uint32_t x = 0; x < w; x++)
                row[x] -= FLOOR_SHIFT(up[x] + down[x], 1);
        }
        for (uint32_t y = 0; y < h; y += 2) {
            int32_t *row = p + y * stride;
            int32_t *up = y > 0 ? row - stride : row + stride;
            int32_t *down = y + 1 < h ? row + stride : row - stride;
            for (uint32_t x = 0; x < w; x++)
                row[x] += FLOOR_SHIFT(up[x] + down[x] + 2, 2);
        }
    }
    /* Row 2k becomes LL row k: row k is never a low-pass row still to be read (2k' > 2k >= k). */
    for (uint32_t y = 0, k = 0; y < h; y += 2, k++) {
        int32_t *row = p + y * stride, *ll = p + k * stride;
        lift_1d(row, w);
        for (uint32_t x = 0; 2 * x < w; x++)
            ll[x] = row[2 * x];
    }
}

static int32_t clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The CRC-32 of the canonical buffer of the w x h band held in planes[0..nc): what a decoder
 * gives at that level after the inverse RCT (3 samples), the DC level shift and clamping, laid out
 * as frames.h's canonical form (little-endian, interleaved, signed samples two's complement). row
 * holds w * nc * bytes_per_sample bytes. */
static uint32_t band_crc(int32_t *const *planes, size_t stride, uint32_t w, uint32_t h,
                         const struct ahl_raw_frame *f, uint8_t *row)
{
    uint32_t nc = f->components, p = f->precision, crc = 0;
    int32_t shift = f->is_signed ? 0 : (int32_t)1 << (p - 1);
    int32_t lo = f->is_signed ? -((int32_t)1 << (p - 1)) : 0;
    int32_t hi = f->is_signed ? ((int32_t)1 << (p - 1)) - 1 : ((int32_t)1 << p) - 1;
    size_t row_bytes = (size_t)w * nc * f->bytes_per_sample;
    for (uint32_t y = 0; y < h; y++) {
        const int32_t *p0 = planes[0] + (size_t)y * stride;
        if (nc == 1 && f->bytes_per_sample == 2) {
            for (uint32_t x = 0; x < w; x++) {
                uint32_t s = (uint32_t)clamp(p0[x] + shift, lo, hi);
                row[2 * x] = (uint8_t)s;
                row[2 * x + 1] = (uint8_t)(s >> 8);
            }
        } else if (nc == 1) {
            for (uint32_t x = 0; x < w; x++)
                row[x] = (uint8_t)clamp(p0[x] + shift, lo, hi);
        } else {
            const int32_t *p1 = planes[1] + (size_t)y * stride,
                          *p2 = planes[2] + (size_t)y * stride;
            for (uint32_t x = 0; x < w; x++) {
                int32_t g = p0[x] - FLOOR_SHIFT(p1[x] + p2[x], 2), v[3] = {p2[x] + g, g, p1[x] + g};
                for (uint32_t c = 0; c < 3; c++) {
                    uint32_t s = (uint32_t)clamp(v[c] + shift, lo, hi);
                    size_t o = ((size_t)x * 3 + c) * f->bytes_per_sample;
                    row[o] = (uint8_t)s;
                    if (f->bytes_per_sample == 2)
                        row[o + 1] = (uint8_t)(s >> 8);
                }
            }
        }
        crc = ahl_crc32(crc, row, row_bytes);
    }
    return crc;
}

/* Row y of f as the encoder's input, one line of w values per component (lines[0..nc)): the DC
 * level shift (unsigned samples minus 2^(precision-1)), then for 3 samples the RCT (Y,
 * Cb = B - G, Cr = R - G), computed from the interleaved row put in lines[3] (3 * w values). */
static void load_row(const struct ahl_raw_frame *f, uint32_t y, int32_t *const *lines)
{
    uint32_t w = f->width, nc = f->components;
    int32_t shift = f->is_signed ? 0 : (int32_t)1 << (f->precision - 1);
    size_t n = (size_t)w * nc;
    int32_t *v = nc == 1 ? lines[0] : lines[3]; /* 3 samples: interleaved into lines[3] first */
    const uint8_t *p = f->data + (size_t)y * n * f->bytes_per_sample;
    if (f->bytes_per_sample == 1 && f->is_signed)
        for (size_t i = 0; i < n; i++)
            v[i] = (int8_t)p[i];
    else if (f->bytes_per_sample == 1)
        for (size_t i = 0; i < n; i++)
            v[i] = p[i] - shift;
    else if (f->is_signed)
        for (size_t i = 0; i < n; i++)
            v[i] = (int16_t)(uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    else
        for (size_t i = 0; i < n; i++)
            v[i] = (int32_t)(p[2 * i] | p[2 * i + 1] << 8) - shift;
    if (nc == 3)
        for (uint32_t x = 0; x < w; x++) {
            int32_t r = v[3 * x], g = v[3 * x + 1], b = v[3 * x + 2];
            lines[0][x] = FLOOR_SHIFT(r + 2 * g + b, 2);
            lines[1][x] = b - g;
            lines[2][x] = r - g;
        }
}

/* The first decomposition level of f, straight from its canonical rows into the LL planes
 * (ceil(w/2) x ceil(h/2) each, row stride ceil(w/2)), so the full image is never held as 32-bit
 * samples: the vertical pass keeps a window of three input rows and two high-pass rows. rows
 * holds 5 * nc lines of w values (plus, for 3 samples, one of 3 * w). */
static void first_level(const struct ahl_raw_frame *f, int32_t *const *ll, int32_t *rows)
{
    uint32_t w = f->width, h = f->height, nc = f->components, lw = (w + 1) / 2;
    /* even row, odd row, next even row, previous and current high-pass rows; per component */
    int32_t *e[4], *o[4], *nx[4], *dp[3], *dc[3];
    for (uint32_t c = 0; c < nc; c++) {
        e[c] = rows + (size_t)(5 * c) * w;
        o[c] = e[c] + w;
        nx[c] = o[c] + w;
        dp[c] = nx[c] + w;
        dc[c] = dp[c] + w;
    }
    e[3] = o[3] = nx[3] = rows + (size_t)5 * nc * w; /* load_row's RGB scratch */
    load_row(f, 0, e);
    for (uint32_t y = 0, k = 0; y < h; y += 2, k++) {
        /* Here e holds x[y]; dc holds d[y-1] (y > 0). */
        for (uint32_t c = 0; c < nc; c++) {
            int32_t *t = dp[c];
            dp[c] = dc[c];
            dc[c] = t;
        }
        if (y + 1 < h) {
            load_row(f, y + 1, o);
            if (y + 2 < h)
                load_row(f, y + 2, nx);
            for (uint32_t c = 0; c < nc; c++) {
                const int32_t *below = y + 2 < h ? nx[c] : e[c]; /* x[h] mirrors to x[h-2] */
                for (uint32_t x = 0; x < w; x++)
                    dc[c][x] = o[c][x] - FLOOR_SHIFT(e[c][x] + below[x], 1);
            }
        }
        for (uint32_t c = 0; c < nc; c++) {
            /* s = x[y] + floor((d[y-1] + d[y+1] + 2) / 4): d[-1] mirrors to d[1] and a d past the
             * end to the last one; one row alone (h == 1) is its own low-pass. */
            if (h >= 2) {
                const int32_t *up = y > 0 ? dp[c] : dc[c], *down = y + 1 < h ? dc[c] : dp[c];
                for (uint32_t x = 0; x < w; x++)
                    e[c][x] += FLOOR_SHIFT(up[x] + down[x] + 2, 2);
            }
            lift_1d(e[c], w);
            int32_t *out = ll[c] + (size_t)k * lw;
            for (uint32_t x = 0; 2 * x < w; x++)
                out[x] = e[c][2 * x];
            int32_t *t = e[c]; /* x[y+2] becomes the next even row */
            e[c] = nx[c];
            nx[c] = t;
        }
    }
}

int ahl__htj2k_level_checksums(const struct ahl_raw_frame *f, uint32_t decompositions,
                               struct ahl_stored_frame *out, struct ahl_err *err)
{
    uint32_t nc = f->components, w = f->width, h = f->height;
    int32_t *ll[3] = {NULL, NULL, NULL}, *rows = NULL;
    uint8_t *row = NULL;
    int rc = 0;
    out->n_levels = 0;
    if (decompositions + 1 > AHL_FRAME_MAX_LEVELS || (nc != 1 && nc != 3) || f->precision < 1 ||
        f->precision > 16 || f->len != (size_t)w * h * nc * f->bytes_per_sample ||
        (decompositions > 0 && ((w >> decompositions) < 1 || (h >> decompositions) < 1)))
        return ahl_fail(err, AHL_EINVAL, "frame is not in canonical form");
    /* Lowest resolution first: level i is the image reduced by decompositions - i levels; the full
     * size is the frame itself. */
    out->n_levels = decompositions + 1;
    out->levels[decompositions].width = w;
    out->levels[decompositions].height = h;
    out->levels[decompositions].checksum = ahl_crc32(0, f->data, f->len);
    if (decompositions == 0)
        return 0;
    size_t lw = (w + 1) / 2, lh = (h + 1) / 2;
    for (uint32_t c = 0; c < nc; c++)
        if (!(ll[c] = malloc(lw * lh * sizeof *ll[c]))) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory for the level checksums");
            goto out;
        }
    if (!(rows = malloc((size_t)(5 * nc + (nc == 3 ? 3 : 0)) * w * sizeof *rows)) ||
        !(row = malloc(lw * nc * f->bytes_per_sample))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory for the level checksums");
        goto out;
    }
    first_level(f, ll, rows);
    for (uint32_t r = 1; r <= decompositions; r++) {
        if (r > 1)
            for (uint32_t c = 0; c < nc; c++)
                forward_level(ll[c], lw, w, h);
        w = (w + 1) / 2;
        h = (h + 1) / 2;
        struct ahl_frame_level *l = &out->levels[decompositions - r];
        l->width = w;
        l->height = h;
        l->checksum = band_crc(ll, lw, w, h, f, row);
    }
out:
    for (uint32_t c = 0; c < 3; c++)
        free(ll[c]);
    free(rows);
    free(row);
    if (rc < 0)
        out->n_levels = 0;
    return rc;
}
