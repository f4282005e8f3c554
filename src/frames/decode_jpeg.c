/* JPEG (ISO 10918) frames: 8-bit lossy (baseline, extended, progressive) through libjpeg-turbo,
 * 12-bit lossy and lossless (process 14, any predictor) through DCMTK's IJG libraries behind the
 * jpeg_ijg.cc shim. The frame header (SOF) is read here first, so the output is sized and checked
 * against the dataset before either library runs.
 *
 * Colour: libjpeg converts YCbCr to RGB when the stream says it is YCbCr (JFIF, Adobe transform 1,
 * or three components without markers), the way viewers decode a JPEG frame; the decoded frame
 * then reports "RGB". The IJG path converts only when the dataset's PhotometricInterpretation is
 * YBR_* and the process is lossy (lossless colour data is kept as coded). */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"

#include "base/banned.h"

struct sof_info {
    int process; /* the SOF marker's low nibble: 0 baseline, 1 extended, 2 progressive, 3 lossless
                  */
    int precision;
    uint32_t width, height, components;
};

/* Walks the marker segments from SOI to the first SOF. */
static int read_sof(const uint8_t *p, size_t n, struct sof_info *s, struct ahl_err *err)
{
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8)
        return ahl_fail(err, AHL_EPARSE, "JPEG frame does not start with SOI (FF D8)");
    size_t pos = 2;
    while (pos + 4 <= n) {
        if (p[pos] != 0xFF)
            return ahl_fail(err, AHL_EPARSE,
                            "JPEG frame: expected a marker at byte %zu, found %02X", pos, p[pos]);
        uint8_t m = p[pos + 1];
        if (m == 0xFF) {
            pos++; /* fill byte */
            continue;
        }
        size_t len = (size_t)p[pos + 2] << 8 | p[pos + 3];
        if (len < 2 || pos + 2 + len > n)
            return ahl_fail(err, AHL_EPARSE,
                            "JPEG frame: marker FF%02X at byte %zu has a bad length %zu", m, pos,
                            len);
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (len < 8)
                return ahl_fail(err, AHL_EPARSE, "JPEG frame: SOF segment too short");
            const uint8_t *q = p + pos + 4;
            s->process = m & 0x0F;
            s->precision = q[0];
            s->height = (uint32_t)q[1] << 8 | q[2];
            s->width = (uint32_t)q[3] << 8 | q[4];
            s->components = q[5];
            if (m >= 0xC5)
                return ahl_fail(err, AHL_EUNSUPPORTED,
                                "JPEG frame uses hierarchical or arithmetic coding (SOF%d)",
                                m - 0xC0);
            return 0;
        }
        if (m == 0xDA || m == 0xD9)
            break;
        pos += 2 + len;
    }
    return ahl_fail(err, AHL_EPARSE, "JPEG frame has no frame header (SOF)");
}

struct turbo_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

static void turbo_error_exit(j_common_ptr cinfo)
{
    struct turbo_err *e = (struct turbo_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void turbo_quiet(j_common_ptr cinfo, int level)
{
    /* Warnings (corrupt data that libjpeg recovers from) are errors for us: a frame that needed
     * recovery is not the frame that was sent. */
    struct turbo_err *e = (struct turbo_err *)cinfo->err;
    if (level < 0 && !e->msg[0]) {
        (*cinfo->err->format_message)(cinfo, e->msg);
        longjmp(e->jump, 1);
    }
}

static int decode_turbo(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                        struct ahl_raw_frame *out, struct ahl_err *err)
{
    struct jpeg_decompress_struct cinfo;
    struct turbo_err jerr;
    /* volatile: assigned between setjmp and a possible longjmp back. */
    volatile int rc = 0;
    memset(&jerr, 0, sizeof jerr);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = turbo_error_exit;
    jerr.pub.emit_message = turbo_quiet;
    if (setjmp(jerr.jump)) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG decoding failed: %s", jerr.msg);
        goto out;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, src, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components == 3 && cinfo.jpeg_color_space != JCS_RGB)
        cinfo.out_color_space = JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW; /* the accurate IDCT, bit-identical to IJG's */
    jpeg_start_decompress(&cinfo);
    bool converted = cinfo.num_components == 3 && cinfo.jpeg_color_space == JCS_YCbCr;
    const char *pi = converted ? "RGB" : d->photometric;
    if ((uint32_t)cinfo.output_components != d->samples_per_pixel) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG decodes to %d components; the dataset says %u",
                      cinfo.output_components, d->samples_per_pixel);
        jpeg_abort_decompress(&cinfo);
        goto out;
    }
    rc = ahl__raw_frame_alloc(out, cinfo.output_width, cinfo.output_height,
                              (uint16_t)cinfo.output_components, 8, d->pixel_representation == 1,
                              pi, err);
    if (rc < 0) {
        jpeg_abort_decompress(&cinfo);
        goto out;
    }
    size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out->data + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
out:
    jpeg_destroy_decompress(&cinfo);
    if (rc < 0)
        ahl_raw_frame_release(out);
    return rc;
}

int ahl_decode_jpeg(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                    struct ahl_raw_frame *out, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    struct sof_info sof = {0};
    int rc = read_sof(src, n, &sof, err);
    if (rc < 0)
        return rc;
    rc = ahl__check_geometry(d, "JPEG", sof.width, sof.height, sof.components, err);
    if (rc < 0)
        return rc;
    if (sof.precision < 2 || sof.precision > 16 ||
        (sof.process != 3 && sof.precision != 8 && sof.precision != 12))
        return ahl_fail(err, AHL_EPARSE, "JPEG precision %d is not valid for process SOF%d",
                        sof.precision, sof.process);
    if (sof.process != 3 && sof.precision == 8)
        return decode_turbo(d, src, n, out, err);

    /* The IJG path: 12-bit lossy or lossless. */
    uint16_t precision = d->bits_stored >= sof.precision ? d->bits_stored : (uint16_t)sof.precision;
    bool ybr = strncmp(d->photometric, "YBR", 3) == 0 && sof.process != 3;
    int bits = sof.precision <= 8 ? 8 : sof.precision <= 12 ? 12 : 16;
    /* The IJG library writes bits <= 8 as bytes and wider samples as 16-bit words. */
    size_t bps = bits == 8 ? 1 : 2, pixels = (size_t)sof.width * sof.height;
    rc = ahl__raw_frame_alloc(out, sof.width, sof.height, (uint16_t)sof.components,
                              precision > 16 ? 16 : precision, d->pixel_representation == 1,
                              d->photometric, err);
    if (rc < 0)
        return rc;
    struct ahl_raw_frame tmp = {0};
    uint8_t *dst = out->data;
    if (bps != out->bytes_per_sample) {
        /* 8-bit IJG output into a 16-bit canonical frame (BitsStored > 8 with an 8-bit stream). */
        rc = ahl__raw_frame_alloc(&tmp, sof.width, sof.height, (uint16_t)sof.components,
                                  bps == 1 ? 8 : 16, false, "", err);
        if (rc < 0)
            goto out;
        dst = tmp.data;
    }
    char msg[300] = "";
    bool converted = false;
    if (ahl__ijg_decode(src, n, bits, ybr, d->pixel_representation == 1, dst,
                        pixels * sof.components * bps, &converted, msg, sizeof msg) < 0) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG decoding failed: %s", msg);
        goto out;
    }
    if (converted &&
        (rc = ahl__copy_field(out->photometric, sizeof out->photometric, "RGB", err)) < 0)
        goto out;
    if (tmp.data) {
        for (size_t i = 0; i < pixels * sof.components; i++) {
            uint16_t v =
                bps == 1 ? tmp.data[i] : (uint16_t)(tmp.data[2 * i] | tmp.data[2 * i + 1] << 8);
            if (out->bytes_per_sample == 1)
                out->data[i] = (uint8_t)v;
            else {
                out->data[2 * i] = (uint8_t)v;
                out->data[2 * i + 1] = (uint8_t)(v >> 8);
            }
        }
    }
    ahl__raw_frame_normalize(out);
out:
    ahl_raw_frame_release(&tmp);
    if (rc < 0)
        ahl_raw_frame_release(out);
    return rc;
}
