/* Unit tests of the frames codecs: the RLE decoder (table-driven, well-formed and malformed),
 * native decoding (byte order, planar, YBR 4:2:2, masking), HTJ2K encode -> OpenJPEG decode round
 * trips (8/16-bit, signed/unsigned, 1 and 3 samples, odd sizes), byte-identical encodes whatever
 * the heap held before (frame ids are content addresses), the import transcode's metadata
 * against values computed here independently, its level checksums against OpenJPEG's decodes at
 * every reduced resolution, and its refusal of an encode that does not decode to the source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "frames/frames.h"
#include "frames/codec_internal.h"

/* ---- RLE ---- */

/* Builds an RLE frame: the header for nseg segments, then the segments given as (len, bytes). */
static size_t rle_frame(uint8_t *out, int nseg, const uint8_t *const *segs, const size_t *lens)
{
    memset(out, 0, 64);
    out[0] = (uint8_t)nseg;
    size_t pos = 64;
    for (int i = 0; i < nseg; i++) {
        out[4 + 4 * i] = (uint8_t)pos;
        out[5 + 4 * i] = (uint8_t)(pos >> 8);
        memcpy(out + pos, segs[i], lens[i]);
        pos += lens[i];
    }
    return pos;
}

struct rle_case {
    const char *name;
    uint32_t rows, cols;
    uint16_t spp, alloc;
    int nseg;
    const uint8_t *seg[3];
    size_t len[3];
    int expect_rc;
    const uint8_t *expect; /* canonical bytes when expect_rc == 0 */
    size_t expect_len;
};

#define S(...) ((const uint8_t[]){__VA_ARGS__})
#define L(...) sizeof((const uint8_t[]){__VA_ARGS__})

static const struct rle_case rle_cases[] = {
    {"literal", 1, 3, 1, 8, 1, {S(0x02, 1, 2, 3)}, {L(0x02, 1, 2, 3)}, 0, S(1, 2, 3), 3},
    {"replicate", 1, 3, 1, 8, 1, {S(0xFE, 7)}, {L(0xFE, 7)}, 0, S(7, 7, 7), 3},
    {"noop then literal",
     1,
     3,
     1,
     8,
     1,
     {S(0x80, 0x02, 4, 5, 6)},
     {L(0x80, 0x02, 4, 5, 6)},
     0,
     S(4, 5, 6),
     3},
    {"mixed runs, 2 rows",
     2,
     2,
     1,
     8,
     1,
     {S(0xFF, 9, 0x01, 1, 2)},
     {L(0xFF, 9, 0x01, 1, 2)},
     0,
     S(9, 9, 1, 2),
     4},
    {"padding after the data is ignored",
     1,
     2,
     1,
     8,
     1,
     {S(0x01, 1, 2, 0x00, 0)},
     {L(0x01, 1, 2, 0x00, 0)},
     0,
     S(1, 2),
     2},
    {"run longer than the image is cut", 1, 2, 1, 8, 1, {S(0xFA, 3)}, {L(0xFA, 3)}, 0, S(3, 3), 2},
    {"16-bit: MSB segment first",
     1,
     2,
     1,
     16,
     2,
     {S(0x01, 0x12, 0x34), S(0x01, 0x56, 0x78)},
     {3, 3},
     0,
     S(0x56, 0x12, 0x78, 0x34),
     4},
    {"RGB: one segment per sample",
     1,
     2,
     3,
     8,
     3,
     {S(0xFF, 1), S(0xFF, 2), S(0x01, 3, 4)},
     {2, 2, 3},
     0,
     S(1, 2, 3, 1, 2, 4),
     6},
    {"too few segments", 1, 2, 1, 16, 1, {S(0x01, 1, 2)}, {3}, AHL_EPARSE, NULL, 0},
    {"segment ends early", 1, 4, 1, 8, 1, {S(0x01, 1, 2)}, {3}, AHL_EPARSE, NULL, 0},
    {"literal passes the end", 1, 4, 1, 8, 1, {S(0x03, 1, 2)}, {3}, AHL_EPARSE, NULL, 0},
    {"repeat without a value", 1, 4, 1, 8, 1, {S(0x01, 1, 2, 0xFE)}, {4}, AHL_EPARSE, NULL, 0},
    {"empty segment", 1, 1, 1, 8, 1, {S(0)}, {0}, AHL_EPARSE, NULL, 0},
};

static void test_rle_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rle_cases / sizeof rle_cases[0]; i++) {
        const struct rle_case *c = &rle_cases[i];
        uint8_t buf[256];
        size_t n = rle_frame(buf, c->nseg, c->seg, c->len);
        struct ahl_pixel_desc d =
            ahl_pixel_desc_make(c->rows, c->cols, c->spp, c->alloc, c->alloc, 0,
                                c->spp == 3 ? "RGB" : "MONOCHROME2", AHL_TS_RLE);
        struct ahl_raw_frame f;
        struct ahl_err err = {0};
        int rc = ahl_frame_decode(&d, buf, n, &f, &err);
        if (rc != c->expect_rc)
            fail_msg("%s: rc %d, expected %d (%s)", c->name, rc, c->expect_rc, err.msg);
        if (rc == 0) {
            assert_int_equal(f.len, c->expect_len);
            if (memcmp(f.data, c->expect, c->expect_len) != 0)
                fail_msg("%s: decoded bytes differ", c->name);
        } else {
            assert_null(f.data);
            assert_true(err.msg[0] != '\0');
        }
        ahl_raw_frame_release(&f);
    }
}

static void test_rle_bad_headers(void **state)
{
    (void)state;
    struct ahl_pixel_desc d = ahl_pixel_desc_make(1, 2, 1, 8, 8, 0, "MONOCHROME2", AHL_TS_RLE);
    uint8_t buf[80];
    struct ahl_raw_frame f;
    struct ahl_err err = {0};
    const uint8_t *seg[1] = {S(0x01, 1, 2)};
    size_t len[1] = {3};
    size_t n = rle_frame(buf, 1, seg, len);
    assert_int_equal(ahl_frame_decode(&d, buf, 40, &f, &err), AHL_EPARSE); /* short header */
    buf[4] = 10;                                                           /* offset < 64 */
    assert_int_equal(ahl_frame_decode(&d, buf, n, &f, &err), AHL_EPARSE);
    buf[4] = 200; /* offset past the end */
    assert_int_equal(ahl_frame_decode(&d, buf, n, &f, &err), AHL_EPARSE);
    assert_non_null(strstr(err.msg, "offset"));
}

/* ---- native ---- */

static void test_native_layouts(void **state)
{
    (void)state;
    struct ahl_raw_frame f;
    struct ahl_err err = {0};
    /* Big endian 16-bit, 12 bits stored: the top nibble (overlay bits) is dropped. */
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(1, 2, 1, 16, 12, 0, "MONOCHROME2", AHL_TS_EXPLICIT_BE);
    assert_int_equal(ahl_frame_decode(&d, S(0xF1, 0x23, 0x04, 0x56), 4, &f, &err), 0);
    assert_memory_equal(f.data, S(0x23, 0x01, 0x56, 0x04), 4);
    ahl_raw_frame_release(&f);
    /* Signed 12-bit in 16: sign-extended from bit 11. */
    d = ahl_pixel_desc_make(1, 1, 1, 16, 12, 1, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_frame_decode(&d, S(0x00, 0x08), 2, &f, &err), 0);
    assert_memory_equal(f.data, S(0x00, 0xF8), 2);
    int64_t mn, mx;
    ahl_raw_frame_minmax(&f, &mn, &mx);
    assert_int_equal(mn, -2048);
    ahl_raw_frame_release(&f);
    /* Planar RGB becomes interleaved. */
    d = ahl_pixel_desc_make(1, 2, 3, 8, 8, 0, "RGB", AHL_TS_IMPLICIT_LE);
    d.planar_configuration = 1;
    assert_int_equal(ahl_frame_decode(&d, S(1, 2, 3, 4, 5, 6), 6, &f, &err), 0);
    assert_memory_equal(f.data, S(1, 3, 5, 2, 4, 6), 6);
    ahl_raw_frame_release(&f);
    /* YBR_FULL_422: Y1 Y2 Cb Cr -> Y1 Cb Cr Y2 Cb Cr, reported as YBR_FULL. */
    d = ahl_pixel_desc_make(1, 2, 3, 8, 8, 0, "YBR_FULL_422", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_native_frame_size(&d), 4);
    assert_int_equal(ahl_frame_decode(&d, S(10, 20, 128, 129), 4, &f, &err), 0);
    assert_memory_equal(f.data, S(10, 128, 129, 20, 128, 129), 6);
    assert_string_equal(f.photometric, "YBR_FULL");
    ahl_raw_frame_release(&f);
    /* 16 allocated, 8 stored: one byte per sample in canonical form. */
    d = ahl_pixel_desc_make(1, 2, 1, 16, 8, 1, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_frame_decode(&d, S(0xFF, 0xFF, 0x7F, 0x00), 4, &f, &err), 0);
    assert_int_equal(f.bytes_per_sample, 1);
    assert_memory_equal(f.data, S(0xFF, 0x7F), 2);
    ahl_raw_frame_release(&f);
    /* Too short. */
    d = ahl_pixel_desc_make(2, 2, 1, 16, 16, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_frame_decode(&d, S(1, 2, 3), 3, &f, &err), AHL_EPARSE);
    assert_null(f.data);
}

static void test_desc_checks(void **state)
{
    (void)state;
    struct ahl_err err = {0};
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(4, 4, 1, 16, 12, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_pixel_desc_check(&d, &err), 0);
    d.high_bit = 15;
    assert_int_equal(ahl_pixel_desc_check(&d, &err), AHL_EUNSUPPORTED);
    d = ahl_pixel_desc_make(4, 4, 1, 32, 32, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_pixel_desc_check(&d, &err), AHL_EUNSUPPORTED);
    d = ahl_pixel_desc_make(4, 4, 1, 8, 8, 0, "MONOCHROME2", "1.2.3.4");
    assert_int_equal(ahl_pixel_desc_check(&d, &err), AHL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "1.2.3.4"));
    d = ahl_pixel_desc_make(0, 4, 1, 8, 8, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    assert_int_equal(ahl_pixel_desc_check(&d, &err), AHL_EPARSE);
    assert_string_equal(ahl_frame_content_type(AHL_TS_HTJ2K_RPCL), "image/jph");
    assert_string_equal(ahl_frame_content_type(NULL), "image/jph");
    assert_string_equal(ahl_frame_content_type(AHL_TS_JPEG_BASELINE), "image/jpeg");
    assert_string_equal(ahl_frame_content_type(AHL_TS_EXPLICIT_LE), "application/octet-stream");
}

/* ---- HTJ2K round trips ---- */

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

struct rt_case {
    uint32_t w, h;
    uint16_t spp, alloc, stored, pr;
};

static const struct rt_case rt_cases[] = {
    {17, 13, 1, 8, 8, 0},   {17, 13, 1, 8, 8, 1},   {33, 7, 1, 16, 16, 0},   {33, 7, 1, 16, 16, 1},
    {31, 29, 1, 16, 12, 1}, {31, 29, 1, 16, 12, 0}, {9, 5, 3, 8, 8, 0},      {1, 1, 1, 16, 16, 1},
    {1, 1, 3, 8, 8, 0},     {65, 3, 3, 16, 16, 0},  {130, 67, 1, 16, 10, 0}, {3, 257, 1, 8, 1, 0},
};

/* Fills a native LE buffer with random samples within the stored range (signed values spread on
 * both sides of zero) and returns their min and max, computed here independently. */
static void fill_native(const struct rt_case *c, uint8_t *buf, int64_t *mn, int64_t *mx)
{
    size_t n = (size_t)c->w * c->h * c->spp;
    *mn = INT64_MAX;
    *mx = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        uint32_t r = rnd() & ((1u << c->stored) - 1);
        if (i % 7 == 0) /* some flat areas so the coder sees structure too */
            r = ((uint32_t)(i / 7 % 3) << (c->stored > 2 ? c->stored - 2 : 0)) &
                ((1u << c->stored) - 1);
        if (c->pr)
            v = (int64_t)r - (int64_t)(1u << (c->stored - 1));
        else
            v = r;
        if (v < *mn)
            *mn = v;
        if (v > *mx)
            *mx = v;
        if (c->alloc == 8)
            buf[i] = (uint8_t)v;
        else {
            buf[2 * i] = (uint8_t)v;
            buf[2 * i + 1] = (uint8_t)((uint64_t)v >> 8);
        }
    }
}

/* Every frame of rt_cases through the import path of a data store of format fmt: stored in
 * fmt's syntax, decoding (independently of the transcode) to the source bit for bit. */
static void round_trips(enum ahl_lossless_format fmt)
{
    bool j2k = fmt == AHL_LOSSLESS_J2K;
    const char *ts = ahl_lossless_format_syntax(fmt);
    for (size_t k = 0; k < sizeof rt_cases / sizeof rt_cases[0]; k++) {
        const struct rt_case *c = &rt_cases[k];
        size_t bytes = (size_t)c->w * c->h * c->spp * (c->alloc / 8);
        uint8_t *src = malloc(bytes);
        int64_t mn, mx;
        fill_native(c, src, &mn, &mx);
        struct ahl_pixel_desc d =
            ahl_pixel_desc_make(c->h, c->w, c->spp, c->alloc, c->stored, c->pr,
                                c->spp == 3 ? "RGB" : "MONOCHROME2", AHL_TS_EXPLICIT_LE);
        struct ahl_stored_frame sf;
        struct ahl_err err = {0};
        int rc = ahl_frame_transcode_as(&d, src, bytes, fmt, &sf, &err);
        if (rc != 0)
            fail_msg("case %zu (%ux%u spp %u %u/%u pr %u): %s", k, c->w, c->h, c->spp, c->alloc,
                     c->stored, c->pr, err.msg);
        assert_string_equal(sf.stored_transfer_syntax, ts);
        assert_string_equal(sf.content_type, j2k ? "image/j2c" : "image/jph");
        assert_int_equal(sf.frame_size_in_bytes, sf.len);
        assert_string_equal(sf.id, ""); /* the content address is the blob store's to give */
        /* Min/max against the generator's own bookkeeping. */
        assert_int_equal(sf.min_pixel, mn);
        assert_int_equal(sf.max_pixel, mx);
        /* The full-resolution checksum is zlib's CRC32 of the canonical source buffer. */
        struct ahl_raw_frame raw;
        assert_int_equal(ahl_frame_decode(&d, src, bytes, &raw, &err), 0);
        assert_true(sf.n_levels >= 1);
        const struct ahl_frame_level *full = &sf.levels[sf.n_levels - 1];
        assert_int_equal(full->width, c->w);
        assert_int_equal(full->height, c->h);
        assert_int_equal(full->checksum, (uint32_t)crc32(0, raw.data, (uInt)raw.len));
        /* Levels halve (rounding up) from the top down. */
        for (size_t i = 0; i + 1 < sf.n_levels; i++) {
            uint32_t r = (uint32_t)(sf.n_levels - 1 - i);
            assert_int_equal(sf.levels[i].width, (c->w + (1u << r) - 1) >> r);
            assert_int_equal(sf.levels[i].height, (c->h + (1u << r) - 1) >> r);
        }
        /* Decoding the stored codestream independently of the transcode gives the source. */
        struct ahl_pixel_desc sd = d;
        snprintf(sd.transfer_syntax, sizeof sd.transfer_syntax, "%s", ts);
        struct ahl_raw_frame back;
        assert_int_equal(ahl_frame_decode(&sd, sf.data, sf.len, &back, &err), 0);
        assert_int_equal(back.len, raw.len);
        assert_memory_equal(back.data, raw.data, raw.len);
        /* The same pixels give the same bytes (so the same content address); HTJ2K has the TLM
         * marker in the main header. */
        struct ahl_stored_frame again;
        assert_int_equal(ahl_frame_transcode_as(&d, src, bytes, fmt, &again, &err), 0);
        assert_int_equal(again.len, sf.len);
        assert_memory_equal(again.data, sf.data, sf.len);
        int has_tlm = 0;
        for (size_t i = 0; i + 1 < sf.len && i < 400; i++)
            if (sf.data[i] == 0xFF && sf.data[i + 1] == 0x55)
                has_tlm = 1;
        assert_true(has_tlm || j2k);
        if (j2k) {
            /* A bare Part 1 codestream (SOC SIZ, Rsiz without the Part 15 bit), RPCL, reversible
             * 5/3: COD follows SIZ (38 + 3 per component bytes after its marker). */
            assert_true(sf.len > 60 && sf.data[0] == 0xFF && sf.data[1] == 0x4F &&
                        sf.data[2] == 0xFF && sf.data[3] == 0x51);
            assert_int_equal(sf.data[6] & 0x40, 0);
            const uint8_t *cod = sf.data + 4 + 38 + 3 * c->spp;
            assert_true(cod[0] == 0xFF && cod[1] == 0x52);
            assert_int_equal(cod[5], 2);                   /* progression: RPCL */
            assert_int_equal(cod[8], c->spp == 3 ? 1 : 0); /* the colour transform */
            assert_int_equal(cod[13], 1);                  /* reversible 5/3 */
            assert_int_equal(cod[12] & 0x40, 0);           /* not HT code blocks */
        }
        ahl_stored_frame_release(&again);
        ahl_raw_frame_release(&back);
        ahl_raw_frame_release(&raw);
        ahl_stored_frame_release(&sf);
        free(src);
    }
}

static void test_htj2k_round_trips(void **state)
{
    (void)state;
    round_trips(AHL_LOSSLESS_HTJ2K);
}

/* A data store created with losslessStorageFormat JPEG_2000_LOSSLESS: the same frames as JPEG
 * 2000 lossless (OpenJPEG), 8, 10, 12 and 16 bits, signed and unsigned, 1 and 3 samples, odd
 * sizes down to 1x1. */
static void test_j2k_round_trips(void **state)
{
    (void)state;
    round_trips(AHL_LOSSLESS_J2K);
}

/* Frame ids are content addresses, so encoding must not depend on memory the encoder never
 * wrote. glibc's M_PERTURB p fills every malloc'd block with p ^ 0xFF: two encodes of the same
 * frame, one with zero-filled blocks (p = 0xFF) and one with 0xA5-filled blocks, must give the
 * same codestream. The images are flat vertical
 * bars with widths that are not multiples of 8 at any wavelet level, so many code-blocks are all
 * zero and the last block of each subband row is narrow: the case in which OpenJPH 0.9.0's SIMD
 * row kernels read unwritten line padding (see htj2k_encode.cc). Without glibc (or under ASan,
 * whose allocator ignores mallopt) the encodes still must agree, the test then just proves less. */
static void deterministic(enum ahl_lossless_format fmt)
{
    static const struct {
        uint32_t w, h;
        uint16_t spp, alloc;
    } cases[] = {{100, 60, 3, 8}, {100, 60, 1, 8}, {77, 45, 3, 16}, {50, 33, 1, 16}, {13, 7, 3, 8}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct ahl_raw_frame f = {0};
        f.width = cases[k].w;
        f.height = cases[k].h;
        f.components = cases[k].spp;
        f.bytes_per_sample = (uint16_t)(cases[k].alloc / 8);
        f.precision = cases[k].alloc;
        snprintf(f.photometric, sizeof f.photometric, "%s",
                 f.components == 3 ? "RGB" : "MONOCHROME2");
        f.len = (size_t)f.width * f.height * f.components * f.bytes_per_sample;
        f.data = malloc(f.len);
        assert_non_null(f.data);
        for (uint32_t y = 0; y < f.height; y++)
            for (uint32_t x = 0; x < f.width; x++)
                for (uint16_t c = 0; c < f.components; c++) {
                    /* bars 20 columns wide, a different level per component */
                    uint32_t v = (x / 20 * 64 + c * 32) & 0xFF;
                    size_t i = (((size_t)y * f.width + x) * f.components + c) * f.bytes_per_sample;
                    f.data[i] = (uint8_t)v;
                    if (f.bytes_per_sample == 2)
                        f.data[i + 1] = (uint8_t)(x / 20);
                }
        uint8_t *first = NULL, *again = NULL;
        size_t first_len = 0, again_len = 0;
        struct ahl_err err = {0};
#ifdef M_PERTURB
        mallopt(M_PERTURB, 0xFF);
#endif
        int rc1 = fmt == AHL_LOSSLESS_J2K ? ahl_j2k_encode(&f, &first, &first_len, &err)
                                          : ahl_htj2k_encode(&f, &first, &first_len, &err);
#ifdef M_PERTURB
        mallopt(M_PERTURB, 0x5A);
#endif
        int rc2 = fmt == AHL_LOSSLESS_J2K ? ahl_j2k_encode(&f, &again, &again_len, &err)
                                          : ahl_htj2k_encode(&f, &again, &again_len, &err);
#ifdef M_PERTURB
        mallopt(M_PERTURB, 0);
#endif
        assert_int_equal(rc1, 0);
        assert_int_equal(rc2, 0);
        if (first_len != again_len || memcmp(first, again, first_len) != 0)
            fail_msg("case %zu (%ux%u spp %u, %u-bit): encodes differ (%zu vs %zu bytes)", k,
                     f.width, f.height, f.components, cases[k].alloc, first_len, again_len);
        /* And the codestream still decodes to exactly the source. */
        struct ahl_pixel_desc d =
            ahl_pixel_desc_make(f.height, f.width, f.components, cases[k].alloc, cases[k].alloc, 0,
                                f.photometric, ahl_lossless_format_syntax(fmt));
        struct ahl_raw_frame back;
        assert_int_equal(ahl_decode_j2k(&d, first, first_len, 0, &back, &err), 0);
        assert_int_equal(back.len, f.len);
        assert_memory_equal(back.data, f.data, f.len);
        ahl_raw_frame_release(&back);
        free(first);
        free(again);
        ahl_raw_frame_release(&f);
    }
}

static void test_htj2k_deterministic(void **state)
{
    (void)state;
    deterministic(AHL_LOSSLESS_HTJ2K);
}

/* The same for OpenJPEG's JPEG 2000 lossless encoder: frame IDs of JPEG_2000_LOSSLESS data stores
 * are content addresses too. */
static void test_j2k_deterministic(void **state)
{
    (void)state;
    deterministic(AHL_LOSSLESS_J2K);
}

/* The level checksums import computes from the verification decode (level_checksums.c) must be the
 * ones OpenJPEG's decode at each reduced resolution gives, as they were when every level was
 * decoded: odd and even sizes down to 1 pixel, every depth and signedness, 1 and 3 samples (RCT),
 * and contents that make the reduced levels leave the sample range (so clamping is exercised). */
static void levels_match_reduced_decodes(enum ahl_lossless_format fmt)
{
    static const uint32_t sizes[][2] = {{1, 1},  {2, 1},   {1, 5},   {2, 2},    {3, 3},
                                        {5, 4},  {7, 9},   {16, 16}, {17, 33},  {32, 1},
                                        {1, 40}, {63, 65}, {64, 2},  {100, 37}, {129, 130}};
    static const struct {
        uint16_t spp, alloc, stored, pr;
    } kinds[] = {{1, 8, 8, 0},   {1, 8, 8, 1},   {1, 8, 1, 0},   {1, 16, 12, 0},
                 {1, 16, 12, 1}, {1, 16, 16, 0}, {1, 16, 16, 1}, {3, 8, 8, 0},
                 {3, 16, 16, 0}, {3, 16, 10, 1}, {3, 8, 5, 1}};
    size_t checked = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++)
            for (int content = 0; content < 3; content++) {
                uint32_t w = sizes[si][0], h = sizes[si][1];
                uint16_t spp = kinds[ki].spp, alloc = kinds[ki].alloc, stored = kinds[ki].stored;
                bool sgn = kinds[ki].pr == 1;
                size_t n = (size_t)w * h * spp, bytes = n * (alloc / 8);
                uint8_t *src = malloc(bytes);
                assert_non_null(src);
                int64_t lo = sgn ? -(1ll << (stored - 1)) : 0;
                int64_t hi = sgn ? (1ll << (stored - 1)) - 1 : (1ll << stored) - 1;
                for (size_t i = 0; i < n; i++) {
                    size_t px = i / spp, x = px % w, y = px / w;
                    int64_t v;
                    if (content == 0) /* noise over the whole range */
                        v = lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1));
                    else if (content == 1) /* extremes side by side: overshoot when reduced */
                        v = ((x + y + i % spp) % 2) ? hi : lo;
                    else /* a ramp per sample */
                        v = lo +
                            (int64_t)((x * 7 + y * 3 + i % spp * 11) % (uint64_t)(hi - lo + 1));
                    if (alloc == 8)
                        src[i] = (uint8_t)v;
                    else {
                        src[2 * i] = (uint8_t)v;
                        src[2 * i + 1] = (uint8_t)((uint64_t)v >> 8);
                    }
                }
                struct ahl_pixel_desc d =
                    ahl_pixel_desc_make(h, w, spp, alloc, stored, kinds[ki].pr,
                                        spp == 3 ? "RGB" : "MONOCHROME2", AHL_TS_EXPLICIT_LE);
                struct ahl_stored_frame sf;
                struct ahl_err err = {0};
                if (ahl_frame_transcode_as(&d, src, bytes, fmt, &sf, &err) != 0)
                    fail_msg("%ux%u spp %u %u/%u pr %u: %s", w, h, spp, alloc, stored, kinds[ki].pr,
                             err.msg);
                uint32_t nres = 0;
                assert_int_equal(ahl__j2k_resolutions(sf.data, sf.len, &nres, &err), 0);
                assert_int_equal(sf.n_levels, nres);
                struct ahl_pixel_desc sd = d;
                snprintf(sd.transfer_syntax, sizeof sd.transfer_syntax, "%s",
                         ahl_lossless_format_syntax(fmt));
                for (size_t l = 0; l < sf.n_levels; l++) {
                    struct ahl_raw_frame dec;
                    uint32_t reduce = (uint32_t)(sf.n_levels - 1 - l);
                    assert_int_equal(ahl_decode_j2k(&sd, sf.data, sf.len, reduce, &dec, &err), 0);
                    if (dec.width != sf.levels[l].width || dec.height != sf.levels[l].height ||
                        (uint32_t)crc32(0, dec.data, (uInt)dec.len) != sf.levels[l].checksum)
                        fail_msg("%ux%u spp %u %u/%u pr %u content %d: level %zu (reduce %u) is "
                                 "%ux%u crc %u, OpenJPEG %ux%u crc %u",
                                 w, h, spp, alloc, stored, kinds[ki].pr, content, l, reduce,
                                 sf.levels[l].width, sf.levels[l].height, sf.levels[l].checksum,
                                 dec.width, dec.height,
                                 (uint32_t)crc32(0, dec.data, (uInt)dec.len));
                    ahl_raw_frame_release(&dec);
                    checked++;
                }
                ahl_stored_frame_release(&sf);
                free(src);
            }
    assert_true(checked > 1000);
}

static void test_levels_match_reduced_decodes(void **state)
{
    (void)state;
    levels_match_reduced_decodes(AHL_LOSSLESS_HTJ2K);
}

/* The same for JPEG 2000 lossless frames, whose checksums come from the same computation. */
static void test_j2k_levels_match_reduced_decodes(void **state)
{
    (void)state;
    levels_match_reduced_decodes(AHL_LOSSLESS_J2K);
}

/* Encoders that hand the verification something other than the source's encode, in the format
 * under test. */
static enum ahl_lossless_format wrong_fmt;

static int encode_right(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                        struct ahl_err *err)
{
    return wrong_fmt == AHL_LOSSLESS_J2K ? ahl_j2k_encode(f, out, out_len, err)
                                         : ahl_htj2k_encode(f, out, out_len, err);
}

/* The other format's codestream of the right pixels: OpenJPEG decodes both to the source. */
static int encode_other_format(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                               struct ahl_err *err)
{
    return wrong_fmt == AHL_LOSSLESS_J2K ? ahl_htj2k_encode(f, out, out_len, err)
                                         : ahl_j2k_encode(f, out, out_len, err);
}

static int encode_other_pixels(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                               struct ahl_err *err)
{
    struct ahl_raw_frame g = *f;
    g.data = malloc(f->len);
    assert_non_null(g.data);
    memcpy(g.data, f->data, f->len);
    g.data[f->len / 2] ^= 1; /* one sample off by one: a valid codestream of another frame */
    int rc = encode_right(&g, out, out_len, err);
    free(g.data);
    return rc;
}

static int encode_damaged(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                          struct ahl_err *err)
{
    int rc = encode_right(f, out, out_len, err);
    for (size_t i = *out_len / 2; rc == 0 && i < *out_len / 2 + 16; i++)
        (*out)[i] ^= 0x5A; /* coded data overwritten */
    return rc;
}

static int encode_truncated(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                            struct ahl_err *err)
{
    int rc = encode_right(f, out, out_len, err);
    *out_len = *out_len * 2 / 3;
    return rc;
}

static int encode_other_size(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                             struct ahl_err *err)
{
    struct ahl_raw_frame g = *f;
    g.height = f->height - 1; /* the frame less its last row */
    g.len = (size_t)g.width * g.height * g.components * g.bytes_per_sample;
    return encode_right(&g, out, out_len, err);
}

/* No frame leaves ahl_frame_transcode unless its one verification decode gave the source: an
 * encoder that gets it wrong in any of these ways fails the frame with AHL_EINTERNAL and leaves
 * nothing to store. With the verification skipped, every case here would succeed. */
static void wrong_encode_refused(enum ahl_lossless_format fmt)
{
    static const struct {
        const char *name;
        ahl__lossless_encode_fn encode;
        const char *says;
    } cases[] = {{"other pixels", encode_other_pixels, "not bit-exact"},
                 {"damaged", encode_damaged, ""},
                 {"truncated", encode_truncated, ""},
                 {"other size", encode_other_size, "not the frame it was made from"},
                 {"other format", encode_other_format, ""}};
    wrong_fmt = fmt;
    const struct rt_case c = {64, 48, 1, 16, 12, 0};
    size_t bytes = (size_t)c.w * c.h * 2;
    uint8_t *src = malloc(bytes);
    int64_t mn, mx;
    fill_native(&c, src, &mn, &mx);
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(c.h, c.w, 1, 16, 12, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    struct ahl_stored_frame sf;
    struct ahl_err err = {0};
    assert_int_equal(ahl__frame_transcode_with(&d, src, bytes, fmt, encode_right, &sf, &err), 0);
    ahl_stored_frame_release(&sf);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memset(&err, 0, sizeof err);
        int rc = ahl__frame_transcode_with(&d, src, bytes, fmt, cases[k].encode, &sf, &err);
        if (rc != AHL_EINTERNAL)
            fail_msg("%s: rc %d (%s)", cases[k].name, rc, err.msg);
        assert_null(sf.data);
        assert_int_equal(sf.len, 0);
        assert_int_equal(sf.n_levels, 0);
        if (!strstr(err.msg, cases[k].says))
            fail_msg("%s: message '%s' does not say '%s'", cases[k].name, err.msg, cases[k].says);
    }
    free(src);
}

static void test_wrong_encode_refused(void **state)
{
    (void)state;
    wrong_encode_refused(AHL_LOSSLESS_HTJ2K);
}

/* The JPEG 2000 lossless verification (OpenJPEG) refuses the same wrong codestreams, and an HTJ2K
 * codestream of the right pixels, which a Part 1 decoder might not read. */
/* JPEG 2000 lossless costs more memory to encode than HTJ2K (frames.h): a frame the HTJ2K budget
 * admits can be too costly for a JPEG_2000_LOSSLESS store, and is then refused before anything
 * is decoded. */
static void test_j2k_cost(void **state)
{
    (void)state;
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(12000, 12000, 1, 16, 16, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    uint64_t src = ahl_native_frame_size(&d), samples = 12000ull * 12000, h, j;
    struct ahl_err err = {0};
    assert_int_equal(ahl_frame_transcode_cost(&d, src), src + 4 * samples + 6 * samples);
    assert_int_equal(ahl_frame_cost_check_as(&d, src, AHL_LOSSLESS_HTJ2K, &h, &err), 0);
    assert_int_equal(ahl_frame_cost_check_as(&d, src, AHL_LOSSLESS_J2K, &j, &err), AHL_ETOOBIG);
    assert_int_equal(j - h, 6 * samples);
    assert_non_null(strstr(err.msg, "12000x12000"));
}

static void test_j2k_wrong_encode_refused(void **state)
{
    (void)state;
    wrong_encode_refused(AHL_LOSSLESS_J2K);
}

static void test_corrupt_codestreams(void **state)
{
    (void)state;
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(8, 8, 1, 8, 8, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    uint8_t src[64];
    for (int i = 0; i < 64; i++)
        src[i] = (uint8_t)(i * 3);
    struct ahl_stored_frame sf;
    struct ahl_err err = {0};
    assert_int_equal(ahl_frame_transcode(&d, src, 64, &sf, &err), 0);
    struct ahl_pixel_desc sd = d;
    snprintf(sd.transfer_syntax, sizeof sd.transfer_syntax, "%s", AHL_TS_HTJ2K_RPCL);
    struct ahl_raw_frame f;
    /* Truncations at every length are errors, never crashes, and never "success" with garbage
     * for the header-only prefixes. */
    for (size_t n = 0; n < 40 && n < sf.len; n++) {
        int rc = ahl_frame_decode(&sd, sf.data, n, &f, &err);
        assert_true(rc < 0);
        assert_null(f.data);
    }
    /* A codestream for a different geometry is refused. */
    sd.rows = 9;
    assert_int_equal(ahl_frame_decode(&sd, sf.data, sf.len, &f, &err), AHL_EPARSE);
    assert_non_null(strstr(err.msg, "8x8"));
    ahl_stored_frame_release(&sf);
    /* JPEG and JPEG-LS garbage. */
    struct ahl_pixel_desc dj =
        ahl_pixel_desc_make(8, 8, 1, 8, 8, 0, "MONOCHROME2", AHL_TS_JPEG_BASELINE);
    assert_int_equal(ahl_frame_decode(&dj, S(0xFF, 0xD8, 0xFF, 0xD9), 4, &f, &err), AHL_EPARSE);
    assert_int_equal(ahl_frame_decode(&dj, S(0x00, 0x01), 2, &f, &err), AHL_EPARSE);
    struct ahl_pixel_desc dl =
        ahl_pixel_desc_make(8, 8, 1, 8, 8, 0, "MONOCHROME2", AHL_TS_JPEGLS_LOSSLESS);
    assert_int_equal(ahl_frame_decode(&dl, S(0xFF, 0xD8, 0xFF, 0xD9), 4, &f, &err), AHL_EPARSE);
}

static void test_one_bit_frames(void **state)
{
    (void)state;
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(3, 3, 1, 1, 1, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    d.number_of_frames = 2;
    /* Two 9-pixel frames back to back: frame 2 starts at bit 9. */
    const uint8_t pixel[] = {0xFF, 0x03, 0x00};
    uint8_t *f2;
    size_t n2;
    struct ahl_err err = {0};
    assert_int_equal(ahl_native_frame_extract(&d, pixel, sizeof pixel, 1, &f2, &n2, &err), 0);
    assert_int_equal(n2, 2);
    assert_int_equal(f2[0], 0x01); /* bit 9 of the data is pixel 0 of frame 2 */
    struct ahl_stored_frame sf;
    assert_int_equal(ahl_frame_transcode(&d, f2, n2, &sf, &err), 0);
    assert_string_equal(sf.stored_transfer_syntax, AHL_TS_EXPLICIT_LE);
    assert_string_equal(sf.content_type, "application/octet-stream");
    assert_int_equal(sf.min_pixel, 0);
    assert_int_equal(sf.max_pixel, 1);
    ahl_stored_frame_release(&sf);
    free(f2);
    assert_int_equal(ahl_native_frame_extract(&d, pixel, 2, 1, &f2, &n2, &err), AHL_EPARSE);
}

static void test_fragment_mapping(void **state)
{
    (void)state;
    struct ahl_dcm_fragment frags[4] = {{100, 10}, {118, 6}, {132, 20}, {160, 4}};
    uint32_t bot[2] = {0, 32}; /* frame 2 starts at fragment 3: (8+10)+(8+6) = 32 */
    struct ahl_dcm_pixel px;
    memset(&px, 0, sizeof px);
    px.present = px.encapsulated = true;
    px.fragments = frags;
    px.n_fragments = 4;
    px.offset_table = bot;
    px.n_offsets = 2;
    struct ahl_frame_span spans[4];
    struct ahl_err err = {0};
    bool bad_table = true;
    assert_int_equal(ahl_frames_map_fragments(&px, 2, NULL, NULL, spans, &bad_table, &err), 0);
    assert_false(bad_table);
    assert_int_equal(spans[0].first, 0);
    assert_int_equal(spans[0].count, 2);
    assert_int_equal(spans[0].bytes, 16);
    assert_int_equal(spans[1].first, 2);
    assert_int_equal(spans[1].count, 2);
    /* One fragment per frame without a table. */
    px.n_offsets = 0;
    bad_table = true;
    assert_int_equal(ahl_frames_map_fragments(&px, 4, NULL, NULL, spans, &bad_table, &err), 0);
    assert_int_equal(spans[3].first, 3);
    assert_false(bad_table); /* an empty table is valid */
    /* A table pointing inside a fragment, no scanner: error. */
    bot[1] = 20;
    px.n_offsets = 2;
    assert_int_equal(ahl_frames_map_fragments(&px, 2, NULL, NULL, spans, &bad_table, &err),
                     AHL_EPARSE);
    assert_true(bad_table);
    /* Single frame: all fragments. */
    px.n_offsets = 0;
    assert_int_equal(ahl_frames_map_fragments(&px, 1, NULL, NULL, spans, NULL, &err), 0);
    assert_int_equal(spans[0].count, 4);
    assert_int_equal(spans[0].bytes, 40);
    /* More frames than fragments. */
    assert_int_equal(ahl_frames_map_fragments(&px, 5, NULL, NULL, spans, NULL, &err), AHL_EPARSE);
}

/* Which Basic Offset Tables are invalid (HealthImaging's warning 45330), for the fragments of
 * test_fragment_mapping (items at 0, 18, 32, 60 from the first item tag), and how the frames are
 * found anyway: by one fragment per frame when the counts agree, else as one frame. */
static void test_offset_table_validity(void **state)
{
    (void)state;
    static const struct {
        uint32_t frames;
        uint32_t bot[4];
        size_t n_bot;
        bool invalid;
        size_t first_of_last; /* spans[frames - 1].first */
    } cases[] = {
        {2, {0, 32}, 2, false, 2},         /* matches */
        {4, {0, 18, 32, 60}, 4, false, 3}, /* matches, one fragment each */
        {1, {0}, 1, false, 0},             /* one frame, one entry */
        {4, {0}, 0, false, 3},             /* empty table */
        {4, {0, 18, 33, 60}, 4, true, 3},  /* an entry inside a fragment */
        {4, {4, 18, 32, 60}, 4, true, 3},  /* the first entry is not 0 */
        {4, {0, 32, 18, 60}, 4, true, 3},  /* not ascending */
        {4, {0, 18, 32, 999}, 4, true, 3}, /* past the last fragment */
        {4, {0, 32}, 2, true, 3},          /* fewer entries than frames */
        {1, {0, 32}, 2, true, 0},          /* more entries than frames */
    };
    struct ahl_dcm_fragment frags[4] = {{100, 10}, {118, 6}, {132, 20}, {160, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint32_t bot[4];
        memcpy(bot, cases[k].bot, sizeof bot);
        struct ahl_dcm_pixel px;
        memset(&px, 0, sizeof px);
        px.present = px.encapsulated = true;
        px.fragments = frags;
        px.n_fragments = 4;
        px.offset_table = cases[k].n_bot ? bot : NULL;
        px.n_offsets = cases[k].n_bot;
        struct ahl_frame_span spans[4];
        struct ahl_err err = {0};
        bool bad_table = !cases[k].invalid;
        int rc =
            ahl_frames_map_fragments(&px, cases[k].frames, NULL, NULL, spans, &bad_table, &err);
        if (rc != 0 || bad_table != cases[k].invalid ||
            spans[cases[k].frames - 1].first != cases[k].first_of_last)
            fail_msg("case %zu: rc %d (%s), invalid %d, last frame from fragment %zu", k, rc,
                     err.msg, bad_table, spans[cases[k].frames - 1].first);
    }
}

/* Marker scanning reads fragment heads from this fake stream. */
static int fake_read(void *ctx, uint64_t off, void *buf, size_t n)
{
    const uint8_t *stream = ctx;
    memcpy(buf, stream + off, n);
    return 0;
}

static void test_fragment_scan(void **state)
{
    (void)state;
    uint8_t stream[64] = {0};
    /* Fragments at 0 (SOI), 8 (continuation), 16 (SOI), 24 (continuation). */
    stream[0] = 0xFF, stream[1] = 0xD8, stream[8] = 0x12, stream[16] = 0xFF, stream[17] = 0xD8;
    stream[24] = 0x34;
    struct ahl_dcm_fragment frags[4] = {{0, 8}, {8, 8}, {16, 8}, {24, 8}};
    struct ahl_dcm_pixel px;
    memset(&px, 0, sizeof px);
    px.encapsulated = true;
    px.fragments = frags;
    px.n_fragments = 4;
    struct ahl_frame_span spans[3];
    struct ahl_err err = {0};
    assert_int_equal(ahl_frames_map_fragments(&px, 2, fake_read, stream, spans, NULL, &err), 0);
    assert_int_equal(spans[1].first, 2);
    assert_int_equal(spans[1].count, 2);
    assert_int_equal(ahl_frames_map_fragments(&px, 3, fake_read, stream, spans, NULL, &err),
                     AHL_EPARSE);
    /* Gathering frame 2 concatenates fragments 3 and 4. */
    assert_int_equal(ahl_frames_map_fragments(&px, 2, fake_read, stream, spans, NULL, &err), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(ahl_frames_gather(&px, &spans[1], fake_read, stream, &buf, &len, &err), 0);
    assert_int_equal(len, 16);
    assert_memory_equal(buf, stream + 16, 16);
    free(buf);
    struct ahl_frame_span bad = {3, 2, 0};
    assert_int_equal(ahl_frames_gather(&px, &bad, fake_read, stream, &buf, &len, &err), AHL_EINVAL);
    assert_null(buf);
}

/* A canonical frame laid out as native pixel data: 8-bit samples widened into 16 bits allocated,
 * colour made planar, and a frame that is not the described geometry refused. */
static void test_raw_to_native(void **state)
{
    (void)state;
    struct ahl_err err;
    uint8_t rgb[2 * 1 * 3] = {1, 2, 3, 4, 5, 6}; /* two RGB pixels, interleaved */
    struct ahl_raw_frame raw = {.data = rgb,
                                .len = sizeof rgb,
                                .width = 2,
                                .height = 1,
                                .components = 3,
                                .bytes_per_sample = 1,
                                .precision = 8};
    snprintf(raw.photometric, sizeof raw.photometric, "RGB");
    struct ahl_pixel_desc d = ahl_pixel_desc_make(1, 2, 3, 16, 8, 0, "RGB", "1.2.840.10008.1.2.1");
    d.planar_configuration = 1;
    uint8_t out[12];
    assert_int_equal(ahl_native_frame_size(&d), sizeof out);
    assert_int_equal(ahl_raw_frame_to_native(&d, &raw, out, &err), 0);
    static const uint8_t want[12] = {1, 0, 4, 0, 2, 0, 5, 0, 3, 0, 6, 0};
    assert_memory_equal(out, want, sizeof want);
    d.columns = 3;
    assert_int_equal(ahl_raw_frame_to_native(&d, &raw, out, &err), AHL_ECORRUPT);
    d = ahl_pixel_desc_make(1, 2, 3, 16, 8, 0, "YBR_FULL", "1.2.840.10008.1.2.1");
    assert_int_equal(ahl_raw_frame_to_native(&d, &raw, out, &err), AHL_EUNSUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rle_table),
        cmocka_unit_test(test_rle_bad_headers),
        cmocka_unit_test(test_native_layouts),
        cmocka_unit_test(test_desc_checks),
        cmocka_unit_test(test_htj2k_round_trips),
        cmocka_unit_test(test_htj2k_deterministic),
        cmocka_unit_test(test_corrupt_codestreams),
        cmocka_unit_test(test_one_bit_frames),
        cmocka_unit_test(test_fragment_mapping),
        cmocka_unit_test(test_offset_table_validity),
        cmocka_unit_test(test_fragment_scan),
        cmocka_unit_test(test_raw_to_native),
        cmocka_unit_test(test_levels_match_reduced_decodes),
        cmocka_unit_test(test_wrong_encode_refused),
        cmocka_unit_test(test_j2k_round_trips),
        cmocka_unit_test(test_j2k_levels_match_reduced_decodes),
        cmocka_unit_test(test_j2k_wrong_encode_refused),
        cmocka_unit_test(test_j2k_cost),
        cmocka_unit_test(test_j2k_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
