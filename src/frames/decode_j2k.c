/* JPEG 2000 (Part 1 and HTJ2K Part 15, raw codestream or JP2 file) through OpenJPEG, from memory.
 * Also decodes at reduced resolution (opj_set_decoded_resolution_factor), which is how the
 * per-level checksums of a stored frame are computed, and reports how many resolution levels a
 * codestream has. The JPEG 2000 lossless encoder of data stores created with
 * losslessStorageFormat JPEG_2000_LOSSLESS (ahl_j2k_encode) and its verification decode
 * (ahl__j2k_verify) are here too: this file is the one that includes openjpeg.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openjpeg.h>

#include "frames/frames.h"
#include "frames/codec_internal.h"
#include "base/text.h"

#include "base/banned.h"

struct mem_src {
    const uint8_t *p;
    size_t n, pos;
};

static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *user)
{
    struct mem_src *m = user;
    if (m->pos >= m->n)
        return (OPJ_SIZE_T)-1;
    size_t k = m->n - m->pos < n ? m->n - m->pos : n;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return k;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user)
{
    struct mem_src *m = user;
    if (n < 0) {
        if ((size_t)-n > m->pos)
            return -1;
        m->pos -= (size_t)-n;
        return n;
    }
    size_t k = m->n - m->pos < (size_t)n ? m->n - m->pos : (size_t)n;
    m->pos += k;
    return (OPJ_OFF_T)k;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *user)
{
    struct mem_src *m = user;
    if (n < 0 || (uint64_t)n > m->n)
        return OPJ_FALSE;
    m->pos = (size_t)n;
    return OPJ_TRUE;
}

/* OpenJPEG reports errors through a callback; keep the first message for the user. */
struct opj_msgs {
    char first[200];
};

static void on_error(const char *msg, void *user)
{
    struct opj_msgs *m = user;
    if (!m->first[0]) {
        ahl_str_copy_cut(m->first, sizeof m->first, msg);
        size_t k = strlen(m->first);
        while (k > 0 && (m->first[k - 1] == '\n' || m->first[k - 1] == ' '))
            m->first[--k] = '\0';
    }
}

static void on_quiet(const char *msg, void *user)
{
    (void)msg;
    (void)user;
}

struct j2k_session {
    opj_codec_t *codec;
    opj_stream_t *stream;
    opj_image_t *image;
    struct mem_src src;
    struct opj_msgs msgs;
};

static void session_close(struct j2k_session *s)
{
    if (s->image)
        opj_image_destroy(s->image);
    if (s->stream)
        opj_stream_destroy(s->stream);
    if (s->codec)
        opj_destroy_codec(s->codec);
    memset(s, 0, sizeof *s);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* OpenJPEG allocates per-tile, per-component state for the whole tile grid while it reads the
 * main header (several kilobytes for each), so a 40-byte SIZ that declares millions of tiles
 * costs gigabytes before any check of ours runs. The SIZ checked must be the one OpenJPEG will
 * use: in a JP2 file the codestream is the content of the first top-level `jp2c` box (what
 * OpenJPEG's JP2 reader decodes), and SIZ is the marker segment right after SOC (ISO/IEC 15444-1
 * A.5.1); a SIZ anywhere else (in an `xml ` box, a later box, a comment) is not read. Grids and
 * component counts no DICOM frame has are refused, and so are tile grids whose per-tile state
 * alone would cost more than a frame: at most AHL_J2K_MAX_TILE_COMPONENTS tiles x components. */
#define AHL_J2K_MAX_TILES 4096u
#define AHL_J2K_MAX_TILE_COMPONENTS 4096u
#define AHL_J2K_MAX_BOXES 64u /* top-level JP2 boxes before jp2c; real files have 3-6 */

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* The codestream of a JP2 file (the content of its first top-level jp2c box) or of a raw
 * codestream (all of it). */
static int find_codestream(const uint8_t *p, size_t n, bool jp2, const uint8_t **cs, size_t *cs_len,
                           struct ahl_err *err)
{
    if (!jp2) {
        *cs = p;
        *cs_len = n;
        return 0;
    }
    size_t pos = 0;
    for (unsigned k = 0; k < AHL_J2K_MAX_BOXES && n - pos >= 8; k++) {
        uint64_t len = be32(p + pos), head = 8;
        if (len == 1) { /* XLBox: a 64-bit length follows the type */
            if (n - pos < 16)
                break;
            len = be64(p + pos + 8);
            head = 16;
        } else if (len == 0) { /* the box runs to the end of the file */
            len = n - pos;
        }
        if (len < head || len > n - pos)
            return ahl_fail(err, AHL_EPARSE,
                            "JP2 box at offset %zu has length %llu; %zu bytes are left", pos,
                            (unsigned long long)len, n - pos);
        if (memcmp(p + pos + 4, "jp2c", 4) == 0) {
            *cs = p + pos + head;
            *cs_len = (size_t)(len - head);
            return 0;
        }
        pos += (size_t)len;
    }
    return ahl_fail(err, AHL_EPARSE,
                    "JP2 file has no contiguous codestream box (jp2c) among its first %u boxes",
                    AHL_J2K_MAX_BOXES);
}

static int check_siz(const uint8_t *p, size_t n, bool jp2, struct ahl_err *err)
{
    const uint8_t *cs = NULL;
    size_t cs_len = 0;
    int rc = find_codestream(p, n, jp2, &cs, &cs_len, err);
    if (rc < 0)
        return rc;
    if (cs_len < 4 || !(cs[0] == 0xFF && cs[1] == 0x4F && cs[2] == 0xFF && cs[3] == 0x51))
        return ahl_fail(err, AHL_EPARSE,
                        "JPEG 2000 codestream does not start with SOC and SIZ (FF 4F FF 51)");
    if (cs_len < 4 + 38)
        return ahl_fail(err, AHL_EPARSE, "JPEG 2000 frame has no complete SIZ marker segment");
    const uint8_t *q = cs + 4; /* Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz */
    uint32_t xsiz = be32(q + 4), ysiz = be32(q + 8), xo = be32(q + 12), yo = be32(q + 16);
    uint32_t xt = be32(q + 20), yt = be32(q + 24), xto = be32(q + 28), yto = be32(q + 32);
    uint32_t csiz = (uint32_t)q[36] << 8 | q[37];
    if (xsiz <= xo || ysiz <= yo || xt == 0 || yt == 0 || xto > xo || yto > yo ||
        xsiz - xo > AHL_FRAME_MAX_DIM || ysiz - yo > AHL_FRAME_MAX_DIM || csiz == 0 || csiz > 4)
        return ahl_fail(err, AHL_EPARSE,
                        "JPEG 2000 SIZ is not a usable frame: image %u..%u x %u..%u, tiles %ux%u, "
                        "%u components",
                        xo, xsiz, yo, ysiz, xt, yt, csiz);
    uint64_t tiles =
        ((uint64_t)(xsiz - xto) + xt - 1) / xt * (((uint64_t)(ysiz - yto) + yt - 1) / yt);
    if (tiles > AHL_J2K_MAX_TILES || tiles * csiz > AHL_J2K_MAX_TILE_COMPONENTS)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "JPEG 2000 frame has %llu tiles of %u components (at most %u tiles and %u "
                        "tile-components supported)",
                        (unsigned long long)tiles, csiz, AHL_J2K_MAX_TILES,
                        AHL_J2K_MAX_TILE_COMPONENTS);
    return 0;
}

static int session_open(struct j2k_session *s, const uint8_t *p, size_t n, struct ahl_err *err)
{
    static const uint8_t jp2_sig[] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20};
    memset(s, 0, sizeof *s);
    if (n < 4)
        return ahl_fail(err, AHL_EPARSE, "JPEG 2000 frame of %zu bytes is too short", n);
    bool jp2 = n >= 8 && memcmp(p, jp2_sig, 8) == 0;
    if (!jp2 && !(p[0] == 0xFF && p[1] == 0x4F))
        return ahl_fail(err, AHL_EPARSE,
                        "JPEG 2000 frame starts with %02X %02X, not a codestream (FF 4F) or JP2 "
                        "signature",
                        p[0], p[1]);
    int rc = check_siz(p, n, jp2, err);
    if (rc < 0)
        return rc;
    s->src.p = p;
    s->src.n = n;
    s->codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    s->stream = opj_stream_create(1 << 16, OPJ_TRUE);
    if (!s->codec || !s->stream) {
        session_close(s);
        return ahl_fail(err, AHL_ENOMEM, "out of memory for the JPEG 2000 decoder");
    }
    opj_set_error_handler(s->codec, on_error, &s->msgs);
    opj_set_warning_handler(s->codec, on_quiet, NULL);
    opj_set_info_handler(s->codec, on_quiet, NULL);
    opj_stream_set_user_data(s->stream, &s->src, NULL);
    opj_stream_set_user_data_length(s->stream, n);
    opj_stream_set_read_function(s->stream, mem_read);
    opj_stream_set_skip_function(s->stream, mem_skip);
    opj_stream_set_seek_function(s->stream, mem_seek);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    if (!opj_setup_decoder(s->codec, &params) || !opj_read_header(s->stream, s->codec, &s->image) ||
        !s->image) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG 2000 header could not be read: %s",
                      s->msgs.first[0] ? s->msgs.first : "malformed codestream");
        session_close(s);
        return rc;
    }
    return 0;
}

int ahl__j2k_resolutions(const uint8_t *src, size_t n, uint32_t *levels, struct ahl_err *err)
{
    struct j2k_session s;
    int rc = session_open(&s, src, n, err);
    if (rc < 0)
        return rc;
    opj_codestream_info_v2_t *info = opj_get_cstr_info(s.codec);
    if (!info || !info->m_default_tile_info.tccp_info) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG 2000 codestream has no coding style");
    } else {
        *levels = info->m_default_tile_info.tccp_info[0].numresolutions;
        for (OPJ_UINT32 c = 1; c < info->nbcomps; c++)
            if (info->m_default_tile_info.tccp_info[c].numresolutions < *levels)
                *levels = info->m_default_tile_info.tccp_info[c].numresolutions;
    }
    if (info)
        opj_destroy_cstr_info(&info);
    session_close(&s);
    return rc;
}

int ahl_decode_j2k(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n, uint32_t reduce,
                   struct ahl_raw_frame *out, struct ahl_err *err)
{
    memset(out, 0, sizeof *out);
    struct j2k_session s;
    int rc = session_open(&s, src, n, err);
    if (rc < 0)
        return rc;
    opj_image_t *im = s.image;
    if (im->numcomps < 1 || !im->comps) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG 2000 image has no components");
        goto out;
    }
    uint32_t full_w = im->x1 - im->x0, full_h = im->y1 - im->y0;
    rc = ahl__check_geometry(d, "JPEG 2000", full_w, full_h, im->numcomps, err);
    if (rc < 0)
        goto out;
    uint32_t prec = im->comps[0].prec;
    for (uint32_t c = 0; c < im->numcomps; c++) {
        if (im->comps[c].dx != 1 || im->comps[c].dy != 1) {
            rc = ahl_fail(err, AHL_EUNSUPPORTED,
                          "JPEG 2000 component %u is subsampled; not supported", c);
            goto out;
        }
        if (im->comps[c].prec != prec || prec < 1 || prec > 16) {
            rc = ahl_fail(err, AHL_EUNSUPPORTED,
                          "JPEG 2000 component precision %u is not supported (1..16, equal for "
                          "all components)",
                          im->comps[c].prec);
            goto out;
        }
    }
    if (reduce > 0 && !opj_set_decoded_resolution_factor(s.codec, reduce)) {
        rc = ahl_fail(err, AHL_EINVAL, "cannot decode JPEG 2000 at resolution factor %u: %s",
                      reduce, s.msgs.first);
        goto out;
    }
    if (!opj_decode(s.codec, s.stream, im) || !opj_end_decompress(s.codec, s.stream)) {
        rc = ahl_fail(err, AHL_EPARSE, "JPEG 2000 decoding failed: %s",
                      s.msgs.first[0] ? s.msgs.first : "malformed codestream");
        goto out;
    }
    uint32_t w = im->comps[0].w, h = im->comps[0].h;
    for (uint32_t c = 0; c < im->numcomps; c++)
        if (!im->comps[c].data || im->comps[c].w != w || im->comps[c].h != h) {
            rc = ahl_fail(err, AHL_EPARSE, "JPEG 2000 decode gave components of different sizes");
            goto out;
        }
    /* The dataset decides signedness and precision (toolkits trust PixelRepresentation when the
     * codestream disagrees); a codestream with more bits than BitsStored keeps its own. */
    uint16_t precision = d->bits_stored >= prec ? d->bits_stored : (uint16_t)prec;
    if (precision > 16)
        precision = 16;
    const char *pi = d->photometric;
    if (strcmp(pi, "YBR_RCT") == 0 || strcmp(pi, "YBR_ICT") == 0)
        pi = "RGB"; /* OpenJPEG undoes the component transform the codestream declares */
    rc = ahl__raw_frame_alloc(out, w, h, (uint16_t)im->numcomps, precision,
                              d->pixel_representation == 1, pi, err);
    if (rc < 0)
        goto out;
    size_t pixels = (size_t)w * h, nc = im->numcomps;
    for (size_t c = 0; c < nc; c++) {
        const OPJ_INT32 *cd = im->comps[c].data;
        if (out->bytes_per_sample == 1)
            for (size_t i = 0; i < pixels; i++)
                out->data[i * nc + c] = (uint8_t)cd[i];
        else
            for (size_t i = 0; i < pixels; i++) {
                uint32_t v = (uint32_t)cd[i];
                out->data[(i * nc + c) * 2] = (uint8_t)v;
                out->data[(i * nc + c) * 2 + 1] = (uint8_t)(v >> 8);
            }
    }
    ahl__raw_frame_normalize(out);
out:
    if (rc < 0)
        ahl_raw_frame_release(out);
    session_close(&s);
    return rc;
}

/* ---- encoding: JPEG 2000 lossless (docs/frames.md#jpeg-2000-lossless-data-stores) ---- */

/* The encoder's output: a buffer that grows as OpenJPEG writes, seeks and skips. */
struct mem_dst {
    uint8_t *p;
    size_t len, cap, pos;
    bool failed; /* out of memory, or past AHL_FRAME_MAX_BYTES */
};

static bool dst_reserve(struct mem_dst *m, size_t end)
{
    if (end > AHL_FRAME_MAX_BYTES) {
        m->failed = true;
        return false;
    }
    if (end <= m->cap)
        return true;
    size_t cap = m->cap ? m->cap : 1 << 16;
    while (cap < end)
        cap *= 2;
    uint8_t *p = realloc(m->p, cap);
    if (!p) {
        m->failed = true;
        return false;
    }
    m->p = p;
    m->cap = cap;
    return true;
}

static OPJ_SIZE_T dst_write(void *buf, OPJ_SIZE_T n, void *user)
{
    struct mem_dst *m = user;
    if (n > AHL_FRAME_MAX_BYTES || !dst_reserve(m, m->pos + n))
        return (OPJ_SIZE_T)-1;
    if (m->pos > m->len) /* a skip past the end leaves zeros */
        memset(m->p + m->len, 0, m->pos - m->len);
    memcpy(m->p + m->pos, buf, n);
    m->pos += n;
    if (m->pos > m->len)
        m->len = m->pos;
    return n;
}

static OPJ_OFF_T dst_skip(OPJ_OFF_T n, void *user)
{
    struct mem_dst *m = user;
    if (n < 0 ? (size_t)-n > m->pos : !dst_reserve(m, m->pos + (size_t)n))
        return -1;
    m->pos = n < 0 ? m->pos - (size_t)-n : m->pos + (size_t)n;
    return n;
}

static OPJ_BOOL dst_seek(OPJ_OFF_T n, void *user)
{
    struct mem_dst *m = user;
    if (n < 0 || !dst_reserve(m, (size_t)n))
        return OPJ_FALSE;
    m->pos = (size_t)n;
    return OPJ_TRUE;
}

/* The sample at index i of a canonical frame (frames.h) as a signed value. */
static int32_t raw_sample(const struct ahl_raw_frame *f, size_t i)
{
    if (f->bytes_per_sample == 1)
        return f->is_signed ? (int32_t)(int8_t)f->data[i] : (int32_t)f->data[i];
    uint16_t v = (uint16_t)(f->data[2 * i] | f->data[2 * i + 1] << 8);
    return f->is_signed ? (int32_t)(int16_t)v : (int32_t)v;
}

int ahl__j2k_encode(const struct ahl_raw_frame *f, uint32_t decompositions, uint8_t **out,
                    size_t *out_len, struct ahl_err *err)
{
    opj_image_cmptparm_t cp[3];
    opj_image_t *im = NULL;
    opj_codec_t *codec = NULL;
    opj_stream_t *stream = NULL;
    struct mem_dst dst = {0};
    struct opj_msgs msgs = {{0}};
    size_t pixels = (size_t)f->width * f->height, nc = f->components;
    int rc = 0;
    *out = NULL;
    *out_len = 0;
    memset(cp, 0, sizeof cp);
    for (size_t c = 0; c < nc; c++) {
        cp[c].dx = cp[c].dy = 1;
        cp[c].w = f->width;
        cp[c].h = f->height;
        cp[c].prec = f->precision;
        cp[c].sgnd = f->is_signed;
    }
    im = opj_image_create((OPJ_UINT32)nc, cp, nc == 3 ? OPJ_CLRSPC_SRGB : OPJ_CLRSPC_GRAY);
    if (!im) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory in the JPEG 2000 encoder");
        goto out;
    }
    im->x0 = im->y0 = 0;
    im->x1 = f->width;
    im->y1 = f->height;
    for (size_t c = 0; c < nc; c++)
        for (size_t i = 0; i < pixels; i++)
            im->comps[c].data[i] = raw_sample(f, i * nc + c);

    opj_cparameters_t p;
    opj_set_default_encoder_parameters(&p);
    p.tcp_numlayers = 1;
    p.tcp_rates[0] = 0; /* one layer holding everything: lossless */
    p.cp_disto_alloc = 1;
    p.irreversible = 0; /* the reversible 5/3 wavelet */
    p.numresolution = (int)decompositions + 1;
    p.cblockw_init = p.cblockh_init = 64;
    p.prog_order = OPJ_RPCL;
    p.tcp_mct = nc == 3 ? 1 : 0; /* the reversible colour transform */
    codec = opj_create_compress(OPJ_CODEC_J2K);
    stream = opj_stream_create(1 << 16, OPJ_FALSE);
    if (!codec || !stream) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory in the JPEG 2000 encoder");
        goto out;
    }
    opj_set_error_handler(codec, on_error, &msgs);
    opj_set_warning_handler(codec, on_quiet, NULL);
    opj_set_info_handler(codec, on_quiet, NULL);
    opj_stream_set_user_data(stream, &dst, NULL);
    opj_stream_set_write_function(stream, dst_write);
    opj_stream_set_skip_function(stream, dst_skip);
    opj_stream_set_seek_function(stream, dst_seek);
    if (!opj_setup_encoder(codec, &p, im) || !opj_start_compress(codec, im, stream) ||
        !opj_encode(codec, stream) || !opj_end_compress(codec, stream) || dst.failed) {
        rc = dst.failed ? ahl_fail(err, AHL_ENOMEM,
                                   "out of memory for the JPEG 2000 codestream (%zu bytes so far)",
                                   dst.len)
                        : ahl_fail(err, AHL_EINTERNAL, "JPEG 2000 encoding failed: %s",
                                   msgs.first[0] ? msgs.first : "no reason given");
        goto out;
    }
    *out = dst.p;
    *out_len = dst.len;
    dst.p = NULL;
out:
    if (stream)
        opj_stream_destroy(stream);
    if (codec)
        opj_destroy_codec(codec);
    if (im)
        opj_image_destroy(im);
    free(dst.p);
    return rc;
}

int ahl__j2k_verify(const uint8_t *cs, size_t n, const struct ahl_raw_frame *f,
                    uint32_t *decompositions, struct ahl_err *err)
{
    struct j2k_session s;
    struct ahl_err why = {0};
    opj_codestream_info_v2_t *info = NULL;
    char what[200] = "";
    int rc = session_open(&s, cs, n, &why);
    if (rc < 0)
        return ahl_fail(err, AHL_EINTERNAL, "JPEG 2000 verification decode failed: %s", why.msg);
    opj_image_t *im = s.image;
    size_t nc = f->components, pixels = (size_t)f->width * f->height;
    info = opj_get_cstr_info(s.codec);
    /* The codestream must be one ahl__j2k_encode writes for f: the level checksums
     * (level_checksums.c) are computed on that assumption. */
    if (!info || !info->m_default_tile_info.tccp_info || info->nbcomps != nc ||
        im->numcomps != nc || im->x0 != 0 || im->y0 != 0 || im->x1 != f->width ||
        im->y1 != f->height || info->tw != 1 || info->th != 1)
        snprintf(what, sizeof what, "it is not one tile of %ux%u with %zu components", f->width,
                 f->height, nc);
    for (size_t c = 0; !what[0] && c < nc; c++) {
        const opj_tccp_info_t *t = &info->m_default_tile_info.tccp_info[c];
        if (im->comps[c].dx != 1 || im->comps[c].dy != 1 || im->comps[c].prec != f->precision ||
            (im->comps[c].sgnd != 0) != f->is_signed)
            snprintf(what, sizeof what, "component %zu is not %u-bit %s without subsampling", c,
                     f->precision, f->is_signed ? "signed" : "unsigned");
        else if (t->qmfbid != 1 ||
                 t->numresolutions != info->m_default_tile_info.tccp_info[0].numresolutions ||
                 t->numresolutions < 1)
            snprintf(what, sizeof what, "component %zu is not reversible 5/3 like the others", c);
    }
    if (!what[0] && (info->m_default_tile_info.mct != 0) != (nc == 3))
        snprintf(what, sizeof what, "the colour transform is %s",
                 info->m_default_tile_info.mct ? "on for one component" : "off for three");
    if (!what[0] && (info->m_default_tile_info.tccp_info[0].cblksty & 0x40))
        snprintf(what, sizeof what, "it is HTJ2K (Part 15), not JPEG 2000 Part 1");
    if (what[0]) {
        rc = ahl_fail(err, AHL_EINTERNAL,
                      "JPEG 2000 verification decode failed: the codestream is not the frame it "
                      "was made from: %s",
                      what);
        goto out;
    }
    *decompositions = info->m_default_tile_info.tccp_info[0].numresolutions - 1;
    if (!opj_decode(s.codec, s.stream, im) || !opj_end_decompress(s.codec, s.stream)) {
        rc = ahl_fail(err, AHL_EINTERNAL, "JPEG 2000 verification decode failed: %s",
                      s.msgs.first[0] ? s.msgs.first : "malformed codestream");
        goto out;
    }
    for (size_t c = 0; c < nc; c++) {
        const OPJ_INT32 *cd = im->comps[c].data;
        if (!cd || im->comps[c].w != f->width || im->comps[c].h != f->height) {
            rc = ahl_fail(err, AHL_EINTERNAL,
                          "JPEG 2000 verification decode failed: component %zu is not %ux%u", c,
                          f->width, f->height);
            goto out;
        }
        for (size_t i = 0; i < pixels; i++)
            if (cd[i] != raw_sample(f, i * nc + c)) {
                rc = ahl_fail(err, AHL_EINTERNAL,
                              "JPEG 2000 round trip is not bit-exact (%ux%u, %zu samples of %u "
                              "bits): component %zu at (%zu, %zu) is %d, not %d",
                              f->width, f->height, nc, f->precision, c, i % f->width, i / f->width,
                              cd[i], raw_sample(f, i * nc + c));
                goto out;
            }
    }
out:
    if (info)
        opj_destroy_cstr_info(&info);
    session_close(&s);
    return rc;
}
