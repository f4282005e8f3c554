/* JPEG-LS (ISO 14495, lossless and near-lossless) frames through CharLS's C API. CharLS writes
 * planar output when the stream is coded component by component (interleave mode "none"); that is
 * re-interleaved here. */
#include <stdlib.h>
#include <string.h>

#include <charls/charls.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

int ahl_decode_jpegls(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                      struct ahl_raw_frame *out, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = 0;
    uint8_t *planar = NULL;
    charls_jpegls_decoder *dec = charls_jpegls_decoder_create();
    if (!dec)
        return ahl_fail(err, AHL_ENOMEM, "out of memory for the JPEG-LS decoder");
    /* CharLS 2.4 spends seconds per kilopixel decoding a scan that runs off the end of its
     * buffer (found by fuzz_frames_jpegls: 115 bytes, 9 s). A complete frame ends with EOI,
     * possibly followed by padding to an even fragment length; require it, which also turns a
     * truncated frame into a clear error. */
    size_t end = n;
    while (end > 0 && n - end < 16 && src[end - 1] == 0x00)
        end--;
    if (end < 4 || src[end - 2] != 0xFF || src[end - 1] != 0xD9) {
        charls_jpegls_decoder_destroy(dec);
        return ahl_fail(err, AHL_EPARSE,
                        "JPEG-LS frame does not end with an EOI marker (FF D9): truncated?");
    }
    charls_frame_info fi;
    charls_interleave_mode im = CHARLS_INTERLEAVE_MODE_NONE;
    charls_jpegls_errc ec = charls_jpegls_decoder_set_source_buffer(dec, src, n);
    if (!ec)
        ec = charls_jpegls_decoder_read_header(dec);
    if (!ec)
        ec = charls_jpegls_decoder_get_frame_info(dec, &fi);
    if (!ec)
        ec = charls_jpegls_decoder_get_interleave_mode(dec, &im);
    if (ec) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG-LS header: %s", charls_get_error_message(ec));
        goto out;
    }
    rc = ahl__check_geometry(d, "JPEG-LS", fi.width, fi.height, (uint32_t)fi.component_count, err);
    if (rc < 0)
        goto out;
    if (fi.bits_per_sample < 2 || fi.bits_per_sample > 16) {
        rc = ahl_fail(err, AHL_EUNSUPPORTED, "JPEG-LS with %d bits per sample is not supported",
                      fi.bits_per_sample);
        goto out;
    }
    uint16_t precision =
        d->bits_stored >= fi.bits_per_sample ? d->bits_stored : (uint16_t)fi.bits_per_sample;
    size_t bps = fi.bits_per_sample <= 8 ? 1 : 2;
    if ((bps == 1) != (precision <= 8)) {
        rc = ahl_fail(err, AHL_EUNSUPPORTED,
                      "JPEG-LS of %d bits in a %u-bit container is not supported",
                      fi.bits_per_sample, d->bits_stored);
        goto out;
    }
    rc = ahl__raw_frame_alloc(out, fi.width, fi.height, (uint16_t)fi.component_count, precision,
                              d->pixel_representation == 1, d->photometric, err);
    if (rc < 0)
        goto out;
    size_t pixels = (size_t)fi.width * fi.height, nc = (size_t)fi.component_count;
    bool deplanar = nc > 1 && im == CHARLS_INTERLEAVE_MODE_NONE;
    uint8_t *dst = out->data;
    if (deplanar) {
        planar = malloc(out->len);
        if (!planar) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        dst = planar;
    }
    ec = charls_jpegls_decoder_decode_to_buffer(dec, dst, out->len, 0);
    if (ec) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG-LS decoding failed: %s", charls_get_error_message(ec));
        goto out;
    }
    if (deplanar)
        for (size_t c = 0; c < nc; c++)
            for (size_t p = 0; p < pixels; p++)
                memcpy(out->data + (p * nc + c) * bps, planar + (c * pixels + p) * bps, bps);
    ahl__raw_frame_normalize(out);
out:
    free(planar);
    charls_jpegls_decoder_destroy(dec);
    if (rc < 0)
        ahl_raw_frame_release(out);
    return rc;
}
