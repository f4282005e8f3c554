/* Native (uncompressed) pixel data to the canonical frame: byte order (explicit VR big endian),
 * planar to interleaved, YBR_FULL_422 chroma expanded, 8-bit samples kept in 8-bit containers,
 * and the bits above HighBit dropped. Deflated files arrive here already inflated by the reader. */
#include <string.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

static uint16_t sample_at(const uint8_t *src, size_t i, unsigned bytes, bool big_endian)
{
    if (bytes == 1)
        return src[i];
    return big_endian ? (uint16_t)((src[2 * i] << 8) | src[2 * i + 1])
                      : (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
}

static void put_sample(struct ahl_raw_frame *f, size_t i, uint16_t v)
{
    if (f->bytes_per_sample == 1)
        f->data[i] = (uint8_t)v;
    else {
        f->data[2 * i] = (uint8_t)v;
        f->data[2 * i + 1] = (uint8_t)(v >> 8);
    }
}

int ahl_decode_native(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                      struct ahl_raw_frame *out, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    if (d->bits_allocated == 1)
        return ahl_fail(err, AHL_EUNSUPPORTED, "1-bit data is stored as-is, not decoded");
    uint64_t need = ahl_native_frame_size(d);
    if (need == 0 || n < need)
        return ahl_fail(err, AHL_EPARSE,
                        "native frame holds %zu bytes; %ux%u x %u samples of %u bits need %llu", n,
                        d->columns, d->rows, d->samples_per_pixel, d->bits_allocated,
                        (unsigned long long)need);
    bool ybr422 = d->samples_per_pixel == 3 && (strcmp(d->photometric, "YBR_FULL_422") == 0 ||
                                                strcmp(d->photometric, "YBR_PARTIAL_422") == 0);
    /* Expanded YBR_FULL_422 is YBR_FULL; the retired partial form keeps its name. */
    const char *pi = ybr422 && d->photometric[4] == 'F' ? "YBR_FULL" : d->photometric;
    int rc = ahl__raw_frame_alloc(out, d->columns, d->rows, d->samples_per_pixel, d->bits_stored,
                                  d->pixel_representation == 1, pi, err);
    if (rc < 0)
        return rc;
    unsigned bytes = d->bits_allocated / 8;
    bool be = ahl__ts_is(d->transfer_syntax, AHL_TS_EXPLICIT_BE) && bytes == 2;
    size_t pixels = (size_t)d->rows * d->columns, spp = d->samples_per_pixel;

    if (ybr422) {
        /* Y1 Y2 Cb Cr for each pair of pixels -> Y1 Cb Cr Y2 Cb Cr. */
        for (size_t p = 0; p < pixels; p += 2) {
            size_t s = p * 2;
            uint16_t y1 = sample_at(src, s, bytes, be), y2 = sample_at(src, s + 1, bytes, be);
            uint16_t cb = sample_at(src, s + 2, bytes, be), cr = sample_at(src, s + 3, bytes, be);
            put_sample(out, p * 3, y1);
            put_sample(out, p * 3 + 1, cb);
            put_sample(out, p * 3 + 2, cr);
            put_sample(out, p * 3 + 3, y2);
            put_sample(out, p * 3 + 4, cb);
            put_sample(out, p * 3 + 5, cr);
        }
    } else if (spp == 3 && d->planar_configuration == 1) {
        for (size_t c = 0; c < 3; c++)
            for (size_t p = 0; p < pixels; p++)
                put_sample(out, p * 3 + c, sample_at(src, c * pixels + p, bytes, be));
    } else if (!be && bytes == out->bytes_per_sample) {
        memcpy(out->data, src, out->len);
    } else {
        for (size_t i = 0; i < pixels * spp; i++)
            put_sample(out, i, sample_at(src, i, bytes, be));
    }
    ahl__raw_frame_normalize(out);
    return 0;
}
