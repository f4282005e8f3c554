/* Unit tests for the frames module's resource limits (src/frames/decode_j2k.c): the JPEG 2000
 * header checks must judge the SIZ that OpenJPEG will use (the codestream of the jp2c box, or the
 * bare codestream), whatever other boxes hold; tile grids too large to hold in memory are refused
 * before OpenJPEG allocates for them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "frames/frames.h"

/* tests/integration/decoder_attacks.py j2k_decoy_codestream(): a JP2 file whose xml box holds a
 * SIZ for one 255x255 tile while the codestream in jp2c declares 65,025 tiles of one pixel and
 * three components. OpenJPEG spent 0.8 GB on its header before the SIZ checked was the real one. */
static const uint8_t decoy_jp2[] = {
    0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A, 0x00, 0x00, 0x00, 0x14,
    0x66, 0x74, 0x79, 0x70, 0x6A, 0x70, 0x32, 0x20, 0x00, 0x00, 0x00, 0x00, 0x6A, 0x70, 0x32, 0x20,
    0x00, 0x00, 0x00, 0x2D, 0x6A, 0x70, 0x32, 0x68, 0x00, 0x00, 0x00, 0x16, 0x69, 0x68, 0x64, 0x72,
    0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x01, 0x07, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x0F, 0x63, 0x6F, 0x6C, 0x72, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00,
    0x49, 0x78, 0x6D, 0x6C, 0x20, 0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07,
    0x01, 0x01, 0xFF, 0x52, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x04, 0x04, 0x00, 0x01,
    0xFF, 0x5C, 0x00, 0x04, 0x40, 0x40, 0x00, 0x00, 0x00, 0x5F, 0x6A, 0x70, 0x32, 0x63, 0xFF, 0x4F,
    0xFF, 0x51, 0x00, 0x2F, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x07, 0x01, 0x01, 0x07, 0x01, 0x01, 0x07, 0x01,
    0x01, 0xFF, 0x52, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x04, 0x04, 0x00, 0x01, 0xFF,
    0x5C, 0x00, 0x04, 0x40, 0x40, 0xFF, 0x90, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0E, 0x00,
    0x01, 0xFF, 0x93, 0xFF, 0xD9,
};

static struct ahl_pixel_desc desc(uint32_t w, uint32_t h, uint16_t spp, const char *ts)
{
    return ahl_pixel_desc_make(h, w, spp, 8, 8, 0, spp == 3 ? "RGB" : "MONOCHROME2", ts);
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_decoy_siz_in_xml_box(void **state)
{
    (void)state;
    struct ahl_pixel_desc d = desc(255, 255, 3, AHL_TS_J2K);
    struct ahl_raw_frame f;
    struct ahl_err err;
    ahl_err_clear(&err);
    assert_int_equal(ahl_decode_j2k(&d, decoy_jp2, sizeof decoy_jp2, 0, &f, &err),
                     AHL_EUNSUPPORTED);
    if (!strstr(err.msg, "65025 tiles of 3 components"))
        fail_msg("got: %s", err.msg);
    assert_null(f.data);
    /* Refused from the header: no allocation for the tile grid took place. */
    assert_true(max_rss_kb() < 100 * 1024);
}

/* Appends a box of this type holding p[0..n). */
static size_t put_box(uint8_t *out, const char *type, const void *p, size_t n)
{
    uint32_t len = (uint32_t)(8 + n);
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    memcpy(out + 4, type, 4);
    memcpy(out + 8, p, n);
    return 8 + n;
}

/* A real codestream in jp2c after an xml box with a SIZ that would be refused (the decoy's own
 * codestream): the real one decides, and it decodes. Damaged box structures are refused. */
static void test_jp2_boxes(void **state)
{
    (void)state;
    struct ahl_raw_frame src = {0}, back = {0};
    struct ahl_err err;
    src.width = 40;
    src.height = 30;
    src.components = 1;
    src.bytes_per_sample = 1;
    src.precision = 8;
    snprintf(src.photometric, sizeof src.photometric, "MONOCHROME2");
    src.len = 40 * 30;
    src.data = malloc(src.len);
    assert_non_null(src.data);
    for (size_t i = 0; i < src.len; i++)
        src.data[i] = (uint8_t)(i * 7);
    uint8_t *cs;
    size_t cs_len;
    assert_int_equal(ahl_htj2k_encode(&src, &cs, &cs_len, &err), 0);

    static const uint8_t sig[] = {0x0D, 0x0A, 0x87, 0x0A};
    static const uint8_t ftyp[] = {'j', 'p', '2', ' ', 0, 0, 0, 0, 'j', 'p', '2', ' '};
    static const uint8_t jp2h[] = {0,   0,   0,   22,  'i', 'h', 'd', 'r', 0, 0, 0, 30, 0,
                                   0,   0,   40,  0,   1,   7,   7,   0,   0, 0, 0, 0,  15,
                                   'c', 'o', 'l', 'r', 1,   0,   0,   0,   0, 0, 17};
    /* The decoy's codestream: starts 8 bytes into its own jp2c box, at the end of the file. */
    const uint8_t *bad_cs = NULL;
    for (size_t i = sizeof decoy_jp2 - 8; i > 0 && !bad_cs; i--)
        if (memcmp(decoy_jp2 + i, "jp2c", 4) == 0)
            bad_cs = decoy_jp2 + i + 4;
    assert_non_null(bad_cs);
    size_t bad_len = (size_t)(decoy_jp2 + sizeof decoy_jp2 - bad_cs);
    uint8_t *file = malloc(cs_len + 512);
    assert_non_null(file);
    size_t n = 0;
    n += put_box(file + n, "jP  ", sig, sizeof sig);
    n += put_box(file + n, "ftyp", ftyp, sizeof ftyp);
    n += put_box(file + n, "jp2h", jp2h, sizeof jp2h);
    n += put_box(file + n, "xml ", bad_cs, bad_len);
    size_t jp2c_at = n;
    n += put_box(file + n, "jp2c", cs, cs_len);

    struct ahl_pixel_desc d = desc(40, 30, 1, AHL_TS_J2K);
    ahl_err_clear(&err);
    if (ahl_decode_j2k(&d, file, n, 0, &back, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(back.len, src.len);
    assert_memory_equal(back.data, src.data, src.len);
    ahl_raw_frame_release(&back);

    /* A box longer than the file. */
    file[jp2c_at + 2] = 0xFF;
    ahl_err_clear(&err);
    assert_int_equal(ahl_decode_j2k(&d, file, n, 0, &back, &err), AHL_EPARSE);
    assert_non_null(strstr(err.msg, "JP2 box at offset"));
    /* No jp2c box: only the signature, ftyp and jp2h. */
    ahl_err_clear(&err);
    assert_int_equal(ahl_decode_j2k(&d, file, jp2c_at - 8 - bad_len, 0, &back, &err), AHL_EPARSE);
    assert_non_null(strstr(err.msg, "no contiguous codestream box"));
    /* A bare codestream that does not start with SOC and SIZ. */
    uint8_t odd[64] = {0xFF, 0x4F, 0xFF, 0x52};
    ahl_err_clear(&err);
    assert_int_equal(ahl_decode_j2k(&d, odd, sizeof odd, 0, &back, &err), AHL_EPARSE);

    free(file);
    free(cs);
    free(src.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoy_siz_in_xml_box),
        cmocka_unit_test(test_jp2_boxes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
