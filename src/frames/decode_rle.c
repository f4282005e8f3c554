/* DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header of segment count and offsets, then one
 * PackBits segment per byte plane (most significant byte of each sample first, samples in order).
 * Written here rather than borrowed because it is short and every byte of it is reachable from
 * input: it never reads outside the frame and checks every count before it copies. */
#include <string.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decodes one PackBits segment src[0..n) into exactly want bytes of dst, written every `stride`
 * bytes. Extra decoded bytes at the end (encoders pad segments to even length) are ignored. */
static int unpack_segment(const uint8_t *src, size_t n, uint8_t *dst, size_t want, size_t stride,
                          size_t seg, struct ahl_err *err)
{
    size_t in = 0, outn = 0;
    while (outn < want) {
        if (in >= n)
            return ahl_fail(err, AHL_EPARSE, "RLE segment %zu ends after %zu of %zu bytes", seg + 1,
                            outn, want);
        int8_t c = (int8_t)src[in++];
        if (c >= 0) {
            size_t len = (size_t)c + 1;
            if (in + len > n)
                return ahl_fail(err, AHL_EPARSE,
                                "RLE segment %zu: literal run of %zu bytes at byte %zu passes "
                                "the end of the segment",
                                seg + 1, len, in - 1);
            if (len > want - outn)
                len = want - outn;
            for (size_t i = 0; i < len; i++)
                dst[(outn + i) * stride] = src[in + i];
            in += (size_t)c + 1;
            outn += len;
        } else if (c != -128) {
            size_t len = (size_t)(1 - c);
            if (in >= n)
                return ahl_fail(err, AHL_EPARSE,
                                "RLE segment %zu: repeat run at byte %zu has no value", seg + 1,
                                in - 1);
            uint8_t v = src[in++];
            if (len > want - outn)
                len = want - outn;
            for (size_t i = 0; i < len; i++)
                dst[(outn + i) * stride] = v;
            outn += len;
        }
    }
    return 0;
}

int ahl_decode_rle(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                   struct ahl_raw_frame *out, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    if (d->bits_allocated != 8 && d->bits_allocated != 16)
        return ahl_fail(err, AHL_EUNSUPPORTED, "RLE with BitsAllocated %u is not supported",
                        d->bits_allocated);
    if (n < 64)
        return ahl_fail(err, AHL_EPARSE,
                        "RLE frame of %zu bytes is shorter than its 64-byte header", n);
    size_t bytes = d->bits_allocated / 8, spp = d->samples_per_pixel;
    size_t nseg = le32(src);
    if (nseg != bytes * spp)
        return ahl_fail(err, AHL_EPARSE,
                        "RLE header has %zu segments; %zu samples of %zu bytes need %zu", nseg, spp,
                        bytes, bytes * spp);
    uint32_t offs[16];
    for (size_t i = 0; i < nseg; i++) {
        offs[i] = le32(src + 4 + 4 * i);
        if (offs[i] < 64 || offs[i] > n || (i > 0 && offs[i] < offs[i - 1]))
            return ahl_fail(err, AHL_EPARSE,
                            "RLE segment %zu offset %u is outside the frame (64..%zu, ascending)",
                            i + 1, offs[i], n);
    }
    /* Decode into the source layout (bits_allocated bytes per sample, little-endian) first; the
     * canonical frame may use fewer bytes per sample. */
    struct ahl_raw_frame tmp;
    int rc = ahl__raw_frame_alloc(&tmp, d->columns, d->rows, (uint16_t)spp,
                                  (uint16_t)(bytes == 2 ? 16 : 8), d->pixel_representation == 1,
                                  d->photometric, err);
    if (rc < 0)
        return rc;
    size_t pixels = (size_t)d->rows * d->columns, stride = spp * bytes;
    for (size_t s = 0; s < nseg; s++) {
        size_t sample = s / bytes, byte_in_sample = bytes - 1 - s % bytes; /* MSB plane first */
        size_t end = s + 1 < nseg ? offs[s + 1] : n;
        rc = unpack_segment(src + offs[s], end - offs[s],
                            tmp.data + sample * bytes + byte_in_sample, pixels, stride, s, err);
        if (rc < 0)
            goto out;
    }
    if (bytes == 1 || d->bits_stored > 8) {
        *out = tmp;
        memset(&tmp, 0, sizeof tmp);
        out->precision = d->bits_stored;
    } else {
        /* 16-bit container, <= 8 significant bits: narrow to the canonical 1 byte. */
        rc = ahl__raw_frame_alloc(out, d->columns, d->rows, (uint16_t)spp, d->bits_stored,
                                  d->pixel_representation == 1, d->photometric, err);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < pixels * spp; i++)
            out->data[i] = tmp.data[2 * i];
    }
    ahl__raw_frame_normalize(out);
out:
    ahl_raw_frame_release(&tmp);
    return rc;
}
