/* The JPH file format (ISO/IEC 15444-15, Annex D) around a stored HTJ2K codestream, for
 * GetImageFrame's image/jph answers. The store keeps bare codestreams (frame ids and checksums are
 * over them); clients such as OpenJPEG's JP2 decoder, which AWS's own samples use, expect a boxed
 * file. A JPH file is the codestream preceded by a few boxes:
 *
 *   JPEG 2000 signature  'jP  ' 0D 0A 87 0A
 *   File type            'ftyp' brand 'jph ', minor version 0, compatibility list 'jph '
 *   JP2 header           'jp2h' holding 'ihdr' (height, width, components, bit depth,
 *                        compression 7, colourspace known, no IPR), 'bpcc' when the components'
 *                        depths differ, and 'colr' (enumerated: greyscale for one component,
 *                        sRGB for three, so that no decoder converts colours)
 *   Contiguous codestream 'jp2c' whose payload is the stored codestream, byte for byte
 *
 * Everything in those boxes comes from the codestream's SIZ marker segment, which follows SOC at
 * the very start, so the header is built from the first bytes of the frame alone and the frame
 * itself can be streamed from its file after it. */
#include <string.h>

#include "frames/frames.h"

#include "base/banned.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int put32(struct ahl_buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return ahl_buf_add(b, p, 4);
}

static int put16(struct ahl_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return ahl_buf_add(b, p, 2);
}

/* A box header: its length (header included) and type. */
static int put_box(struct ahl_buf *b, uint32_t len, const char type[4])
{
    int rc = put32(b, len);
    return rc < 0 ? rc : ahl_buf_add(b, type, 4);
}

int ahl_jph_header(const uint8_t *head, size_t head_len, uint64_t codestream_len,
                   struct ahl_buf *out, struct ahl_err *err)
{
    /* SOC, then SIZ: marker, Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz,
     * Csiz, then Ssiz XRsiz YRsiz per component. */
    if (head_len < 4 + 38 || be16(head) != 0xFF4F || be16(head + 2) != 0xFF51)
        return ahl_fail(err, AHL_ECORRUPT, "the stored codestream does not start with SOC and SIZ");
    const uint8_t *siz = head + 4;
    uint16_t lsiz = be16(siz), csiz = be16(siz + 36);
    if (csiz == 0 || lsiz != 38 + 3u * csiz || head_len < 4 + (size_t)lsiz)
        return ahl_fail(err, AHL_ECORRUPT,
                        "the stored codestream's SIZ marker segment is malformed or too long");
    uint32_t xsiz = be32(siz + 4), ysiz = be32(siz + 8), xo = be32(siz + 12), yo = be32(siz + 16);
    if (xsiz <= xo || ysiz <= yo)
        return ahl_fail(err, AHL_ECORRUPT, "the stored codestream's SIZ gives an empty image");
    if (csiz != 1 && csiz != 3)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "a JPH colour specification needs 1 or 3 components, not %u", csiz);
    const uint8_t *ssiz = siz + 38;
    bool same_depth = true;
    for (unsigned c = 1; c < csiz; c++)
        same_depth &= ssiz[3 * c] == ssiz[0];
    /* Length of the JP2 header superbox: ihdr 22, colr 15, bpcc 8 + one byte per component. */
    uint32_t jp2h_len = 8 + 22 + 15 + (same_depth ? 0 : 8u + csiz);
    static const uint8_t signature[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    int rc = ahl_buf_add(out, signature, sizeof signature);
    if (rc == 0)
        rc = put_box(out, 20, "ftyp");
    if (rc == 0)
        rc = ahl_buf_add(out, "jph \0\0\0\0jph ", 12);
    if (rc == 0)
        rc = put_box(out, jp2h_len, "jp2h");
    if (rc == 0)
        rc = put_box(out, 22, "ihdr");
    if (rc == 0)
        rc = put32(out, ysiz - yo);
    if (rc == 0)
        rc = put32(out, xsiz - xo);
    if (rc == 0)
        rc = put16(out, csiz);
    if (rc == 0) {
        /* BPC: the SIZ's Ssiz byte (depth - 1, sign in the top bit) or 255 when depths differ;
         * C = 7 (JPEG 2000 family), UnkC = 0 (colourspace given below), IPR = 0. */
        uint8_t bpc[4] = {same_depth ? ssiz[0] : 255, 7, 0, 0};
        rc = ahl_buf_add(out, bpc, sizeof bpc);
    }
    if (rc == 0 && !same_depth) {
        rc = put_box(out, 8u + csiz, "bpcc");
        for (unsigned c = 0; rc == 0 && c < csiz; c++)
            rc = ahl_buf_add(out, &ssiz[3 * c], 1);
    }
    if (rc == 0)
        rc = put_box(out, 15, "colr");
    if (rc == 0) {
        /* METH 1 (enumerated), PREC 0, APPROX 0, EnumCS 17 greyscale or 16 sRGB. */
        uint8_t colr[7] = {1, 0, 0, 0, 0, 0, csiz == 1 ? 17 : 16};
        rc = ahl_buf_add(out, colr, sizeof colr);
    }
    if (rc == 0) {
        /* The codestream box: LBox = 1 and an 8-byte XLBox when 32 bits cannot hold it. */
        if (codestream_len + 8 <= UINT32_MAX) {
            rc = put_box(out, (uint32_t)(codestream_len + 8), "jp2c");
        } else {
            rc = put_box(out, 1, "jp2c");
            if (rc == 0)
                rc = put32(out, (uint32_t)((codestream_len + 16) >> 32));
            if (rc == 0)
                rc = put32(out, (uint32_t)(codestream_len + 16));
        }
    }
    if (rc < 0)
        return ahl_fail(err, rc, "cannot build the JPH header: %s", ahl_strerror(rc));
    return 0;
}
