/* Unit tests for the Part-10 reader (src/dicom/p10.c, charset.c) and the data dictionary
 * (dict.c). Inputs are hand-built byte strings written as hex, one table row per case: what the
 * reader must make of each transfer syntax and structure, and the exact message of each error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "dicom/dicomjson.h"
#include "dicom/dict.h"
#include "dicom/p10.h"

/* ---- building inputs -------------------------------------------------------------------- */

struct bytes {
    uint8_t b[8192];
    size_t n;
};

/* Appends hex digits (whitespace ignored) and 'text' in single quotes as ASCII/UTF-8 bytes. */
static void add_hex(struct bytes *o, const char *s)
{
    while (*s) {
        if (*s == '\'') {
            for (s++; *s && *s != '\''; s++)
                o->b[o->n++] = (uint8_t)*s;
            if (*s)
                s++;
            continue;
        }
        if (*s == ' ' || *s == '\n') {
            s++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        o->b[o->n++] = (uint8_t)v;
        s += 2;
    }
}

/* 128-byte preamble, "DICM" and a meta group holding only the transfer syntax (0002,0010). */
static void add_meta(struct bytes *o, const char *ts)
{
    size_t len = strlen(ts), padded = len + (len & 1);
    memset(o->b + o->n, 0, 128);
    o->n += 128;
    memcpy(o->b + o->n, "DICM", 4);
    o->n += 4;
    uint8_t h[8] = {0x02, 0x00, 0x10, 0x00, 'U', 'I', (uint8_t)padded, 0};
    memcpy(o->b + o->n, h, 8);
    o->n += 8;
    memcpy(o->b + o->n, ts, len);
    o->n += len;
    if (padded > len)
        o->b[o->n++] = 0;
}

/* Raw-deflates hex into o (the deflated transfer syntax's body). */
static void add_deflated(struct bytes *o, const char *hex)
{
    struct bytes plain = {.n = 0};
    add_hex(&plain, hex);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = plain.b;
    z.avail_in = (uInt)plain.n;
    z.next_out = o->b + o->n;
    z.avail_out = (uInt)(sizeof(o->b) - o->n);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    o->n = sizeof(o->b) - z.avail_out;
    deflateEnd(&z);
}

/* ---- checks ----------------------------------------------------------------------------- */

static const struct ahl_dcm_elem *get(const struct ahl_dcm_dataset *ds, uint16_t g, uint16_t e)
{
    const struct ahl_dcm_elem *el = ahl_dcm_find(ds, AHL_DCM_TAG(g, e));
    if (el == NULL)
        fail_msg("element (%04X,%04X) missing", g, e);
    return el;
}

static void expect_text(const struct ahl_dcm_dataset *ds, uint16_t g, uint16_t e, const char *vr,
                        const char *text)
{
    const struct ahl_dcm_elem *el = get(ds, g, e);
    assert_string_equal(el->vr, vr);
    assert_non_null(el->value);
    assert_int_equal(el->value_len, strlen(text));
    assert_memory_equal(el->value, text, el->value_len);
}

static void expect_u16(const struct ahl_dcm_dataset *ds, uint16_t g, uint16_t e, uint16_t v)
{
    const struct ahl_dcm_elem *el = get(ds, g, e);
    assert_int_equal(el->value_len, 2);
    assert_int_equal(el->value[0] | (el->value[1] << 8), v);
}

static void check_implicit(const struct ahl_dcm_file *f)
{
    assert_string_equal(f->transfer_syntax, AHL_TS_IMPLICIT_LE);
    assert_false(f->has_preamble);
    assert_int_equal(f->meta.n, 0);
    expect_text(&f->ds, 0x0008, 0x0020, "DA", "20240101");
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "Doe^John");
    expect_u16(&f->ds, 0x0028, 0x0010, 512);
}

static void check_explicit_le(const struct ahl_dcm_file *f)
{
    assert_true(f->has_preamble);
    assert_string_equal(f->transfer_syntax, AHL_TS_EXPLICIT_LE);
    assert_int_equal(f->meta.n, 1);
    expect_u16(&f->ds, 0x0028, 0x0010, 512);
    const struct ahl_dcm_elem *sq = get(&f->ds, 0x0008, 0x1115);
    assert_string_equal(sq->vr, "SQ");
    assert_null(sq->value);
    assert_int_equal(sq->n_items, 1);
    expect_text(&sq->items[0], 0x0008, 0x1150, "UI", "1.");
}

static void check_big_endian(const struct ahl_dcm_file *f)
{
    assert_true(f->big_endian);
    expect_u16(&f->ds, 0x0028, 0x0010, 0x0102);
    const struct ahl_dcm_elem *fl = get(&f->ds, 0x0018, 0x1310);
    /* US x4 in BE "00 01 00 02 00 03 00 04" -> LE */
    assert_int_equal(fl->value_len, 8);
    const uint8_t want[8] = {1, 0, 2, 0, 3, 0, 4, 0};
    assert_memory_equal(fl->value, want, 8);
    const struct ahl_dcm_elem *at = get(&f->ds, 0x0020, 0x5000);
    const uint8_t want_at[4] = {0x10, 0x00, 0x20, 0x00}; /* (0010,0020) */
    assert_memory_equal(at->value, want_at, 4);
    const struct ahl_dcm_elem *fd = get(&f->ds, 0x0018, 0x9087);
    double d;
    memcpy(&d, fd->value, 8);
    assert_true(d == 1.5);
}

static void check_deflated(const struct ahl_dcm_file *f)
{
    assert_true(f->deflated);
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "Doe^John");
    expect_u16(&f->ds, 0x0028, 0x0010, 512);
}

static void check_encapsulated(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    assert_true(px->present);
    assert_true(px->encapsulated);
    assert_int_equal(px->tag, AHL_TAG_PIXEL_DATA);
    assert_int_equal(px->n_offsets, 2);
    assert_int_equal(px->offset_table[0], 0);
    assert_int_equal(px->offset_table[1], 12);
    assert_int_equal(px->n_fragments, 2);
    /* meta: 132 + 8 + 22 = 162; (7FE0,0010) header 12 -> 174; BOT item 8 + 8 -> 190; first
     * fragment header 8 -> 198. */
    assert_int_equal(px->fragments[0].offset, 198);
    assert_int_equal(px->fragments[0].length, 4);
    assert_int_equal(px->fragments[1].offset, 210);
    assert_int_equal(px->fragments[1].length, 2);
    const struct ahl_dcm_elem *el = get(&f->ds, 0x7FE0, 0x0010);
    assert_null(el->value);
    assert_int_equal(el->length, AHL_DCM_UNDEFINED_LENGTH);
    expect_u16(&f->ds, 0xFFFC, 0xFFFC, 0); /* an element after the pixel data is still read */
}

static void check_extended_offsets(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    assert_int_equal(px->n_fragments, 2);
    assert_int_equal(px->n_offsets, 0); /* the Basic Offset Table is empty */
    assert_non_null(px->extended_offsets_lengths);
    assert_int_equal(px->extended_offsets_lengths[0], 4);
    assert_int_equal(px->extended_offsets_lengths[1], 2);
    const struct ahl_dcm_elem *offsets = get(&f->ds, 0x7FE0, 0x0001);
    assert_string_equal(offsets->vr, "OV");
    assert_int_equal(offsets->value_len, 16);
    assert_int_equal(offsets->value[8], 12); /* second frame at byte 12 of the fragments */
}

static void check_native_pixels(const struct ahl_dcm_file *f)
{
    assert_true(f->pixel.present);
    assert_false(f->pixel.encapsulated);
    assert_int_equal(f->pixel.value_offset, 8);
    assert_int_equal(f->pixel.value_length, 4);
    assert_string_equal(f->pixel.vr, "OW");
    assert_null(get(&f->ds, 0x7FE0, 0x0010)->value);
}

static void check_nested_undefined(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_elem *sq = get(&f->ds, 0x0040, 0x0275);
    assert_int_equal(sq->length, AHL_DCM_UNDEFINED_LENGTH);
    assert_int_equal(sq->n_items, 2);
    const struct ahl_dcm_elem *inner = get(&sq->items[0], 0x0040, 0x0008);
    assert_int_equal(inner->n_items, 1);
    expect_text(&inner->items[0], 0x0008, 0x0100, "SH", "T-1 ");
    assert_int_equal(sq->items[1].n, 0); /* an empty item */
    expect_text(&f->ds, 0x0040, 0x1001, "SH", "RP");
}

static void check_un_sequence(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_elem *un = get(&f->ds, 0x0009, 0x1010);
    assert_string_equal(un->vr, "UN");
    assert_int_equal(un->n_items, 1);
    /* Inside: implicit VR little endian, so (0008,0100) gets its VR from the dictionary. */
    expect_text(&un->items[0], 0x0008, 0x0100, "SH", "AB");
    expect_text(&f->ds, 0x0009, 0x0010, "LO", "ACME");
    const struct ahl_dcm_elem *dict_sq = get(&f->ds, 0x0040, 0x0260);
    assert_string_equal(dict_sq->vr, "SQ"); /* a UN the dictionary knows as SQ becomes SQ */
}

static void check_private_implicit_sq(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_elem *el = get(&f->ds, 0x0009, 0x1001);
    assert_string_equal(el->vr, "SQ");
    assert_int_equal(el->n_items, 1);
    expect_u16(&el->items[0], 0x0028, 0x0010, 7);
    expect_text(&f->ds, 0x0009, 0x0010, "LO", "ACME");
}

static void check_empty_padded(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_elem *el = get(&f->ds, 0x0008, 0x0050);
    assert_int_equal(el->length, 0);
    assert_int_equal(el->value_len, 0);
    expect_text(&f->ds, 0x0008, 0x0060, "CS", "MR");  /* even length kept, no padding added */
    expect_text(&f->ds, 0x0008, 0x1030, "LO", "ab "); /* padding kept */
    const struct ahl_dcm_elem *uid = get(&f->ds, 0x0008, 0x0018);
    assert_int_equal(uid->value_len, 6);           /* the NUL padding is kept */
    assert_memory_equal(uid->value, "1.2.3\0", 7); /* and a NUL terminates past value_len */
}

static void check_sorted(const struct ahl_dcm_file *f)
{
    assert_int_equal(f->ds.n, 2);
    assert_int_equal(f->ds.elems[0].tag, AHL_DCM_TAG(0x0008, 0x0020));
    assert_int_equal(f->ds.elems[1].tag, AHL_DCM_TAG(0x0010, 0x0010));
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "A "); /* first of the two (0010,0010) wins */
}

static void check_latin1(const struct ahl_dcm_file *f)
{
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "Buc^J\xC3\xA9r\xC3\xB4me");
    /* CS is not affected by the character set: the byte 0xE9 is invalid there -> U+FFFD */
    expect_text(&f->ds, 0x0008, 0x0060, "CS", "M\xEF\xBF\xBD");
}

static void check_korean(const struct ahl_dcm_file *f)
{
    /* "Hong^Gildong=<ESC>$)C<KS X 1001 hong>" -> U+D64D */
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "Hong^Gildong=\xED\x99\x8D");
}

static void check_japanese(const struct ahl_dcm_file *f)
{
    /* "Yamada=<ESC>$B;3ED<ESC>(B": JIS X 0208 0x3B33 0x4544 = U+5C71 U+7530 (山田) */
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "Yamada=\xE5\xB1\xB1\xE7\x94\xB0 ");
}

static void check_chinese_2022(const struct ahl_dcm_file *f)
{
    /* "Wang=<ESC>$)A" + GB 2312 0xCDF5 -> U+738B (王) */
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "Wang=\xE7\x8E\x8B ");
}

static void check_jis_x0212(const struct ahl_dcm_file *f)
{
    /* "<ESC>$(D" + JIS X 0212 0x3021 -> U+4E02, then "<ESC>(B" back to ASCII for "^A" */
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "\xE4\xB8\x82^A ");
}

static void check_default_invalid(const struct ahl_dcm_file *f)
{
    /* No Specific Character Set: 0xFF is not ASCII; it is replaced, not dropped. */
    expect_text(&f->ds, 0x0010, 0x0010, "PN",
                "A\xEF\xBF\xBD"
                "B ");
}

static void check_item_charset(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_elem *sq = get(&f->ds, 0x0008, 0x1115);
    /* The item declares ISO_IR 100; the data set stays ISO_IR 192. */
    expect_text(&sq->items[0], 0x0010, 0x0010, "PN", "\xC3\xA9 ");
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "\xC3\xA9");
}

static void check_left_in_file(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_elem *el = get(&f->ds, 0x0008, 0x1030);
    assert_null(el->value);
    assert_int_equal(el->length, 8);
    assert_int_equal(el->value_offset, 8);
    expect_text(&f->ds, 0x0010, 0x0010, "PN", "AB");
}

static void check_meta_without_ts(const struct ahl_dcm_file *f)
{
    assert_true(f->has_preamble);
    assert_int_equal(f->meta.n, 1);
    assert_string_equal(f->transfer_syntax, AHL_TS_EXPLICIT_LE);
    expect_text(&f->ds, 0x0008, 0x0060, "CS", "MR");
}

static void check_explicit_no_meta_be(const struct ahl_dcm_file *f)
{
    assert_string_equal(f->transfer_syntax, AHL_TS_EXPLICIT_BE);
    expect_u16(&f->ds, 0x0028, 0x0010, 0x0200);
}

struct p10_case {
    const char *name;
    const char *ts;      /* transfer syntax for a preamble + meta group; NULL: none */
    bool deflate;        /* the body is raw-deflated after the meta group */
    const char *hex;     /* the body */
    int rc;              /* expected return */
    const char *message; /* exact error message when rc < 0 */
    void (*check)(const struct ahl_dcm_file *f);
    struct ahl_p10_limits lim; /* zero: defaults */
};

/* Frequently used element encodings (implicit VR LE). */
#define IMPL_DA "08 00 20 00 08 00 00 00 '20240101'"
#define IMPL_PN "10 00 10 00 08 00 00 00 'Doe^John'"
#define IMPL_ROWS "28 00 10 00 02 00 00 00 00 02"
#define EXPL_ROWS "28 00 10 00 'US' 02 00 00 02"

static const struct p10_case cases[] = {
    {"implicit VR LE without meta",
     NULL,
     false,
     IMPL_DA IMPL_PN IMPL_ROWS,
     0,
     NULL,
     check_implicit,
     {0}},
    {"explicit VR LE, defined-length sequence",
     AHL_TS_EXPLICIT_LE,
     false,
     "08 00 15 11 'SQ' 00 00 12 00 00 00"
     "  FE FF 00 E0 0A 00 00 00"
     "    08 00 50 11 'UI' 02 00 '1.'" EXPL_ROWS,
     0,
     NULL,
     NULL,
     {0}},
    {"explicit VR BE: binary values swapped",
     AHL_TS_EXPLICIT_BE,
     false,
     "00 18 13 10 'US' 00 08 00 01 00 02 00 03 00 04"
     "00 18 90 87 'FD' 00 08 3F F8 00 00 00 00 00 00"
     "00 20 50 00 'AT' 00 04 00 10 00 20"
     "00 28 00 10 'US' 00 02 01 02",
     0,
     NULL,
     check_big_endian,
     {0}},
    {"deflated explicit VR LE",
     AHL_TS_DEFLATED_LE,
     true,
     "10 00 10 00 'PN' 08 00 'Doe^John'" EXPL_ROWS,
     0,
     NULL,
     check_deflated,
     {0}},
    {"encapsulated pixel data: offset table and fragments",
     "1.2.840.10008.1.2.4.50",
     false,
     "E0 7F 10 00 'OB' 00 00 FF FF FF FF"
     "  FE FF 00 E0 08 00 00 00 00 00 00 00 0C 00 00 00"
     "  FE FF 00 E0 04 00 00 00 01 02 03 04"
     "  FE FF 00 E0 02 00 00 00 05 06"
     "  FE FF DD E0 00 00 00 00"
     "FC FF FC FF 'US' 02 00 00 00",
     0,
     NULL,
     check_encapsulated,
     {0}},
    {"extended offset table",
     "1.2.840.10008.1.2.4.50",
     false,
     "E0 7F 01 00 'OV' 00 00 10 00 00 00 00 00 00 00 00 00 00 00 0C 00 00 00 00 00 00 00"
     "E0 7F 02 00 'OV' 00 00 10 00 00 00 04 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00"
     "E0 7F 10 00 'OB' 00 00 FF FF FF FF"
     "  FE FF 00 E0 00 00 00 00"
     "  FE FF 00 E0 04 00 00 00 01 02 03 04"
     "  FE FF 00 E0 02 00 00 00 05 06"
     "  FE FF DD E0 00 00 00 00",
     0,
     NULL,
     check_extended_offsets,
     {0}},
    {"native pixel data located, not read",
     NULL,
     false,
     "E0 7F 10 00 04 00 00 00 01 02 03 04",
     0,
     NULL,
     check_native_pixels,
     {0}},
    {"nested undefined-length sequences and items",
     NULL,
     false,
     "40 00 75 02 FF FF FF FF"
     "  FE FF 00 E0 FF FF FF FF"
     "    40 00 08 00 FF FF FF FF"
     "      FE FF 00 E0 FF FF FF FF"
     "        08 00 00 01 04 00 00 00 'T-1 '"
     "      FE FF 0D E0 00 00 00 00"
     "    FE FF DD E0 00 00 00 00"
     "  FE FF 0D E0 00 00 00 00"
     "  FE FF 00 E0 00 00 00 00"
     "FE FF DD E0 00 00 00 00"
     "40 00 01 10 02 00 00 00 'RP'",
     0,
     NULL,
     check_nested_undefined,
     {0}},
    {"UN of undefined length holds an implicit VR LE sequence",
     AHL_TS_EXPLICIT_LE,
     false,
     "09 00 10 00 'LO' 04 00 'ACME'"
     "09 00 10 10 'UN' 00 00 FF FF FF FF"
     "  FE FF 00 E0 FF FF FF FF"
     "    08 00 00 01 02 00 00 00 'AB'"
     "  FE FF 0D E0 00 00 00 00"
     "FE FF DD E0 00 00 00 00"
     "40 00 60 02 'UN' 00 00 FF FF FF FF"
     "FE FF DD E0 00 00 00 00",
     0,
     NULL,
     check_un_sequence,
     {0}},
    {"private sequence in implicit VR",
     NULL,
     false,
     "09 00 10 00 04 00 00 00 'ACME'"
     "09 00 01 10 12 00 00 00"
     "  FE FF 00 E0 0A 00 00 00"
     "    28 00 10 00 02 00 00 00 07 00",
     0,
     NULL,
     check_private_implicit_sq,
     {0}},
    {"empty and padded values",
     AHL_TS_EXPLICIT_LE,
     false,
     "08 00 18 00 'UI' 06 00 '1.2.3' 00"
     "08 00 50 00 'SH' 00 00"
     "08 00 60 00 'CS' 02 00 'MR'"
     "08 00 30 10 'LO' 03 00 'ab '",
     0,
     NULL,
     check_empty_padded,
     {0}},
    {"out of order and duplicate elements",
     NULL,
     false,
     "10 00 10 00 02 00 00 00 'A '" IMPL_DA "10 00 10 00 02 00 00 00 'B '",
     0,
     NULL,
     NULL,
     {0}},
    {"ISO_IR 100 to UTF-8",
     NULL,
     false,
     "08 00 05 00 0A 00 00 00 'ISO_IR 100'"
     "08 00 60 00 02 00 00 00 'M' E9"
     "10 00 10 00 0A 00 00 00 'Buc^J' E9 'r' F4 'me'",
     0,
     NULL,
     check_latin1,
     {0}},
    {"ISO 2022 IR 149 (Korean) escapes",
     NULL,
     false,
     "08 00 05 00 10 00 00 00 '\\ISO 2022 IR 149'"
     "10 00 10 00 13 00 00 00 'Hong^Gildong=' 1B '$)C' C8 AB",
     0,
     NULL,
     check_korean,
     {0}},
    {"ISO 2022 IR 87 (Japanese) escapes",
     NULL,
     false,
     "08 00 05 00 10 00 00 00 '\\ISO 2022 IR 87 '"
     "10 00 10 00 12 00 00 00 'Yamada=' 1B '$B;3ED' 1B '(B '",
     0,
     NULL,
     check_japanese,
     {0}},
    {"ISO 2022 IR 58 (Chinese) escapes",
     NULL,
     false,
     "08 00 05 00 10 00 00 00 '\\ISO 2022 IR 58 '"
     "10 00 10 00 0C 00 00 00 'Wang=' 1B '$)A' CD F5 ' '",
     0,
     NULL,
     check_chinese_2022,
     {0}},
    {"ISO 2022 IR 159 (JIS X 0212) escapes",
     NULL,
     false,
     "08 00 05 00 10 00 00 00 '\\ISO 2022 IR 159'"
     "10 00 10 00 0C 00 00 00 1B '$(D' 30 21 1B '(B^A '",
     0,
     NULL,
     check_jis_x0212,
     {0}},
    {"undecodable byte replaced",
     NULL,
     false,
     "10 00 10 00 04 00 00 00 'A' FF 'B '",
     0,
     NULL,
     check_default_invalid,
     {0}},
    {"item with its own character set",
     AHL_TS_EXPLICIT_LE,
     false,
     "08 00 05 00 'CS' 0A 00 'ISO_IR 192'"
     "08 00 15 11 'SQ' 00 00 FF FF FF FF"
     "  FE FF 00 E0 FF FF FF FF"
     "    08 00 05 00 'CS' 0A 00 'ISO_IR 100'"
     "    10 00 10 00 'PN' 02 00 E9 ' '"
     "  FE FF 0D E0 00 00 00 00"
     "FE FF DD E0 00 00 00 00"
     "10 00 10 00 'PN' 02 00 C3 A9",
     0,
     NULL,
     check_item_charset,
     {0}},
    {"value over the inline limit stays in the file",
     NULL,
     false,
     "08 00 30 10 08 00 00 00 'abcdefgh'"
     "10 00 10 00 02 00 00 00 'AB'",
     0,
     NULL,
     check_left_in_file,
     {.max_inline = 4}},
    {"meta group without a transfer syntax",
     NULL,
     false,
     "00*128 'DICM' 02 00 12 00 'UI' 02 00 '1 '"
     "08 00 60 00 'CS' 02 00 'MR'",
     0,
     NULL,
     check_meta_without_ts,
     {0}},
    {"explicit VR BE without meta",
     NULL,
     false,
     "00 28 00 10 'US' 00 02 02 00",
     0,
     NULL,
     check_explicit_no_meta_be,
     {0}},

    /* Errors: each with its exact message. */
    {"empty input", NULL, false, "", AHL_EPARSE, "not a DICOM file: it is empty", NULL, {0}},
    {"text is not DICOM",
     NULL,
     false,
     "'Hello, this is not DICOM at all'",
     AHL_EPARSE,
     "not a DICOM file: no \"DICM\" at offset 128, and the data at offset 0 is not a DICOM "
     "element (tag (6548,6C6C), length 1948265583)",
     NULL,
     {0}},
    {"three bytes",
     NULL,
     false,
     "'abc'",
     AHL_EPARSE,
     "not a DICOM file: no \"DICM\" at offset 128 and only 3 bytes of data",
     NULL,
     {0}},
    {"meta without transfer syntax, then three bytes",
     NULL,
     false,
     "00*128 'DICM' 02 00 12 00 'UI' 02 00 '1 ' 01 02 03",
     AHL_EPARSE,
     "truncated element header at offset 142: 8 bytes needed, 3 left",
     NULL,
     {0}},
    {"meta, then three bytes",
     AHL_TS_EXPLICIT_LE,
     false,
     "01 02 03",
     AHL_EPARSE,
     "truncated element header at offset 160: 8 bytes needed, 3 left",
     NULL,
     {0}},
    {"truncated value",
     NULL,
     false,
     IMPL_DA "E0 7F 10 00 00 00 01 00 01 02 03 04",
     AHL_EPARSE,
     "truncated element (7FE0,0010) at offset 16: 65536 bytes declared, 4 left",
     NULL,
     {0}},
    {"truncated header",
     NULL,
     false,
     IMPL_DA "10 00 10 00 08",
     AHL_EPARSE,
     "truncated element header at offset 16: 8 bytes needed, 5 left",
     NULL,
     {0}},
    {"truncated explicit long header",
     AHL_TS_EXPLICIT_LE,
     false,
     "09 00 10 10 'UN' 00 00 FF",
     AHL_EPARSE,
     "truncated element header at offset 160: 12 bytes needed, 9 left",
     NULL,
     {0}},
    {"bad VR bytes",
     AHL_TS_EXPLICIT_LE,
     false,
     EXPL_ROWS "28 00 11 00 01 02 02 00 00 02",
     AHL_EPARSE,
     "element (0028,0011) at offset 170: expected a VR (two upper-case letters), found bytes "
     "01 02",
     NULL,
     {0}},
    {"item outside a sequence",
     NULL,
     false,
     IMPL_DA "FE FF 00 E0 00 00 00 00",
     AHL_EPARSE,
     "unexpected (FFFE,E000) at offset 16: an item or delimiter outside a sequence",
     NULL,
     {0}},
    {"stray item delimiter",
     NULL,
     false,
     IMPL_DA "FE FF 0D E0 00 00 00 00",
     AHL_EPARSE,
     "unexpected item delimiter (FFFE,E00D) at offset 16",
     NULL,
     {0}},
    {"sequence without its delimiter",
     NULL,
     false,
     "40 00 75 02 FF FF FF FF  FE FF 00 E0 00 00 00 00",
     AHL_EPARSE,
     "truncated sequence (0040,0275) starting at offset 0: item header expected at offset 16, "
     "0 bytes left",
     NULL,
     {0}},
    {"item without its delimiter",
     NULL,
     false,
     "40 00 75 02 FF FF FF FF  FE FF 00 E0 FF FF FF FF" IMPL_DA,
     AHL_EPARSE,
     "item at offset 8 has no item delimiter (FFFE,E00D): the data ends at offset 32",
     NULL,
     {0}},
    {"something else where an item belongs",
     NULL,
     false,
     "40 00 75 02 FF FF FF FF" IMPL_DA,
     AHL_EPARSE,
     "sequence (0040,0275) at offset 0: expected an item (FFFE,E000) at offset 8, found "
     "(0008,0020)",
     NULL,
     {0}},
    {"item longer than its sequence",
     NULL,
     false,
     "40 00 75 02 10 00 00 00  FE FF 00 E0 10 00 00 00" IMPL_DA,
     AHL_EPARSE,
     "item at offset 8 (16 bytes) runs past the end of sequence (0040,0275) at offset 24",
     NULL,
     {0}},
    {"element longer than its item",
     NULL,
     false,
     "40 00 75 02 18 00 00 00  FE FF 00 E0 10 00 00 00"
     "08 00 20 00 0A 00 00 00 '20240101XY'",
     AHL_EPARSE,
     "element (0008,0020) at offset 16: its 10 bytes run past the end of its item at offset 32",
     NULL,
     {0}},
    {"undefined length on a US",
     NULL,
     false,
     "28 00 10 00 FF FF FF FF",
     AHL_EPARSE,
     "element (0028,0010) at offset 0: undefined length is not allowed for VR US",
     NULL,
     {0}},
    {"undefined length on OB (not pixel data)",
     AHL_TS_EXPLICIT_LE,
     false,
     "09 00 10 10 'OB' 00 00 FF FF FF FF",
     AHL_EPARSE,
     "element (0009,1010) at offset 160: undefined length is not allowed for VR OB",
     NULL,
     {0}},
    {"nesting deeper than the limit",
     NULL,
     false,
     "40 00 75 02 FF FF FF FF FE FF 00 E0 FF FF FF FF"
     "  40 00 75 02 FF FF FF FF FE FF 00 E0 FF FF FF FF"
     "    40 00 75 02 FF FF FF FF",
     AHL_ETOOBIG,
     "sequence (0040,0275) at offset 32 nests deeper than 2 levels (limit)",
     NULL,
     {.max_inline = 1024,
      .max_inline_total = 1 << 20,
      .max_depth = 2,
      .max_elements = 100,
      .max_fragments = 10}},
    {"more elements than the limit",
     NULL,
     false,
     IMPL_DA IMPL_PN IMPL_ROWS,
     AHL_ETOOBIG,
     "more than 2 elements (limit) at offset 32",
     NULL,
     {.max_inline = 1024,
      .max_inline_total = 1 << 20,
      .max_depth = 2,
      .max_elements = 2,
      .max_fragments = 10}},
    {"inline total over the limit",
     NULL,
     false,
     IMPL_DA IMPL_PN IMPL_ROWS,
     AHL_ETOOBIG,
     "element (0028,0010) at offset 32: inline values exceed 40 bytes (limit)",
     NULL,
     {.max_inline = 1024,
      .max_inline_total = 40,
      .max_depth = 2,
      .max_elements = 100,
      .max_fragments = 10}},
    {"fragment with undefined length",
     "1.2.840.10008.1.2.4.50",
     false,
     "E0 7F 10 00 'OB' 00 00 FF FF FF FF  FE FF 00 E0 FF FF FF FF",
     AHL_EPARSE,
     "encapsulated pixel data (7FE0,0010): fragment at offset 174 has undefined length",
     NULL,
     {0}},
    {"truncated fragment",
     "1.2.840.10008.1.2.4.50",
     false,
     "E0 7F 10 00 'OB' 00 00 FF FF FF FF  FE FF 00 E0 00 00 00 00  FE FF 00 E0 10 00 00 00 01",
     AHL_EPARSE,
     "truncated fragment of (7FE0,0010) at offset 182: 16 bytes declared, 1 left",
     NULL,
     {0}},
    {"offset table of odd size",
     "1.2.840.10008.1.2.4.50",
     false,
     "E0 7F 10 00 'OB' 00 00 FF FF FF FF  FE FF 00 E0 03 00 00 00 01 02 03",
     AHL_EPARSE,
     "basic offset table of (7FE0,0010) at offset 174: length 3 is not a multiple of 4",
     NULL,
     {0}},
    {"too many fragments",
     "1.2.840.10008.1.2.4.50",
     false,
     "E0 7F 10 00 'OB' 00 00 FF FF FF FF  FE FF 00 E0 00 00 00 00"
     "FE FF 00 E0 00 00 00 00 FE FF 00 E0 00 00 00 00 FE FF 00 E0 00 00 00 00",
     AHL_ETOOBIG,
     "more than 2 pixel data fragments (limit) at offset 198",
     NULL,
     {.max_inline = 1024,
      .max_inline_total = 1 << 20,
      .max_depth = 2,
      .max_elements = 100,
      .max_fragments = 2}},
    {"corrupt deflate stream",
     AHL_TS_DEFLATED_LE,
     false,
     "FF FF FF FF FF FF",
     AHL_EPARSE,
     "deflated data is corrupt near file offset 163 (stream offset 162): invalid block type",
     NULL,
     {0}},
};

/* Expands "00*128" (a byte repeated) before the hex parser sees it. */
static void build(const struct p10_case *c, struct bytes *o)
{
    o->n = 0;
    if (c->ts != NULL)
        add_meta(o, c->ts);
    const char *star = strstr(c->hex, "00*128");
    if (star != NULL) {
        memset(o->b + o->n, 0, 128);
        o->n += 128;
        add_hex(o, star + 6);
        return;
    }
    if (c->deflate)
        add_deflated(o, c->hex);
    else
        add_hex(o, c->hex);
}

static void run_case(const struct p10_case *c, bool via_file)
{
    struct bytes in;
    struct ahl_dcm_file *f = NULL;
    struct ahl_err err;
    const struct ahl_p10_limits *lim = c->lim.max_depth ? &c->lim : NULL;
    struct ahl_p10_limits small;
    int rc;

    if (c->lim.max_inline && !c->lim.max_depth) {
        ahl_p10_limits_default(&small);
        small.max_inline = c->lim.max_inline;
        lim = &small;
    }
    build(c, &in);
    ahl_err_clear(&err);
    if (via_file) {
        char path[] = "/tmp/ahl_p10_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, in.b, in.n), (ssize_t)in.n);
        close(fd);
        rc = ahl_p10_read_path(path, lim, &f, &err);
        unlink(path);
    } else {
        rc = ahl_p10_read_mem(in.b, in.n, lim, &f, &err);
    }
    if (rc != c->rc)
        fail_msg("%s (%s): rc %d, expected %d: %s", c->name, via_file ? "file" : "memory", rc,
                 c->rc, err.msg);
    if (rc < 0) {
        assert_null(f);
        if (strcmp(err.msg, c->message) != 0)
            fail_msg("%s: message\n  got  %s\n  want %s", c->name, err.msg, c->message);
        return;
    }
    assert_non_null(f);
    if (c->check != NULL)
        c->check(f);
    /* Every successful read converts to DICOM JSON too. */
    json_t *j = NULL;
    assert_int_equal(ahl_dicomjson_from_dataset(&f->ds, NULL, &j, &err), 0);
    json_decref(j);
    ahl_dcm_file_free(f);
}

static void test_cases_memory(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], false);
}

static void test_cases_file(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], true);
}

static void test_deflate_cut_short(void **state)
{
    (void)state;
    struct bytes in = {.n = 0};
    struct ahl_dcm_file *f = NULL;
    struct ahl_err err;
    add_meta(&in, AHL_TS_DEFLATED_LE);
    add_deflated(&in, "10 00 10 00 'PN' 08 00 'Doe^John'" EXPL_ROWS);
    in.n -= 3;
    assert_int_equal(ahl_p10_read_mem(in.b, in.n, NULL, &f, &err), AHL_EPARSE);
    assert_null(f);
    char want[200];
    snprintf(want, sizeof(want),
             "deflated data ends at file offset %zu before the end of the compressed stream", in.n);
    if (strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("got %s", err.msg);
}

/* A deflated file whose inflated body (pixels bytes of zeros) is far larger than the reader's
 * window: zlib takes in the last input bytes while it still has kilobytes of output to hand over,
 * so the input ends before the output does. Whether the window fills just then depends on the
 * size, so the test tries a range of sizes. The stream ends exactly at the end of the file, is
 * cut short, or is followed by bytes that are not part of it (a NUL pad, junk); each through
 * memory, a file and a pipe. */
static uint8_t *deflated_big_file(uint32_t pixels, size_t cut, const char *trailer,
                                  size_t trailer_len, size_t *n)
{
    struct bytes head = {.n = 0};
    add_meta(&head, AHL_TS_DEFLATED_LE);
    size_t plain_len = 10 + 12 + (size_t)pixels;
    uint8_t *plain = calloc(1, plain_len);
    assert_non_null(plain);
    static const uint8_t rows[] = {0x28, 0x00, 0x10, 0x00, 'U', 'S', 0x02, 0x00, 0x00, 0x02};
    uint8_t px[] = {0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0, 0, 0, 0};
    px[8] = (uint8_t)pixels;
    px[9] = (uint8_t)(pixels >> 8);
    px[10] = (uint8_t)(pixels >> 16);
    memcpy(plain, rows, sizeof rows);
    memcpy(plain + 10, px, sizeof px);
    uLong bound = compressBound((uLong)plain_len);
    uint8_t *out = malloc(head.n + bound + trailer_len);
    assert_non_null(out);
    memcpy(out, head.b, head.n);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = plain;
    z.avail_in = (uInt)plain_len;
    z.next_out = out + head.n;
    z.avail_out = (uInt)bound;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = head.n + z.total_out - cut;
    deflateEnd(&z);
    free(plain);
    memcpy(out + len, trailer, trailer_len);
    *n = len + trailer_len;
    return out;
}

static void test_deflate_ends_at_eof(void **state)
{
    (void)state;
    static const struct {
        size_t cut;
        const char *trailer;
        size_t trailer_len;
        const char *message; /* NULL: must parse; else the start of the error */
    } rows[] = {
        {0, "", 0, NULL},
        {0, "\0", 1, NULL},
        {0, "junk after the stream", 21, NULL},
        {3, "", 0, "deflated data ends at file offset "},
        {1, "", 0, "deflated data ends at file offset "},
    };
    /* With the reader's 64 KiB window and level 6, sizes just under a multiple of 64 KiB leave
     * the end of the window inside the stream's last match. */
    size_t n_rows = sizeof(rows) / sizeof(rows[0]);
    for (size_t k = 0; k < 12 * n_rows; k++) {
        size_t i = k % n_rows, size = k / n_rows;
        uint32_t pixels = 65536u * (uint32_t)(1 + size / 6) - 12u + 2u * (uint32_t)(size % 6);
        size_t n;
        uint8_t *in =
            deflated_big_file(pixels, rows[i].cut, rows[i].trailer, rows[i].trailer_len, &n);
        for (int how = 0; how < 3; how++) { /* memory, file, pipe */
            struct ahl_dcm_file *f = NULL;
            struct ahl_err err;
            ahl_err_clear(&err);
            int rc;
            if (how == 0) {
                rc = ahl_p10_read_mem(in, n, NULL, &f, &err);
            } else {
                int fds[2];
                char path[] = "/tmp/ahl_p10_dfl_XXXXXX";
                if (how == 1) {
                    fds[0] = mkstemp(path);
                    assert_true(fds[0] >= 0);
                    unlink(path);
                    assert_int_equal(write(fds[0], in, n), (ssize_t)n);
                    assert_int_equal(lseek(fds[0], 0, SEEK_SET), 0);
                } else {
                    assert_int_equal(pipe(fds), 0);
                    /* A pipe holds 64 KiB; the compressed file is a few hundred bytes. */
                    assert_true(n < 60000);
                    assert_int_equal(write(fds[1], in, n), (ssize_t)n);
                    close(fds[1]);
                }
                rc = ahl_p10_read_fd(fds[0], NULL, &f, &err);
                close(fds[0]);
            }
            if (rows[i].message == NULL) {
                if (rc != 0)
                    fail_msg("row %zu, %u pixel bytes, input %d: %s", i, pixels, how, err.msg);
                expect_u16(&f->ds, 0x0028, 0x0010, 512);
                assert_true(f->pixel.present);
                assert_int_equal(f->pixel.value_length, pixels);
                ahl_dcm_file_free(f);
            } else {
                assert_int_equal(rc, AHL_EPARSE);
                assert_null(f);
                if (strncmp(err.msg, rows[i].message, strlen(rows[i].message)) != 0)
                    fail_msg("row %zu, %u pixel bytes, input %d: got %s", i, pixels, how, err.msg);
            }
        }
        free(in);
    }
}

/* A pipe has no size: truncation is noticed when the bytes run out, deflate streams as usual. */
static void test_pipe(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        const char *ts;
        bool deflate;
        const char *message; /* NULL: must parse */
    } rows[] = {
        {IMPL_DA IMPL_PN IMPL_ROWS, NULL, false, NULL},
        {"10 00 10 00 'PN' 08 00 'Doe^John'" EXPL_ROWS, AHL_TS_DEFLATED_LE, true, NULL},
        {IMPL_DA "E0 7F 10 00 00 00 01 00 01 02 03 04", NULL, false,
         "truncated element (7FE0,0010) at offset 16: 65536 bytes declared, 4 left"},
        {IMPL_DA "10 00 10 00 08 00 00 00 'Doe'", NULL, false,
         "truncated element (0010,0010) at offset 16: 8 bytes declared, 3 left"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct bytes in = {.n = 0};
        int fds[2];
        struct ahl_dcm_file *f = NULL;
        struct ahl_err err;
        if (rows[i].ts != NULL)
            add_meta(&in, rows[i].ts);
        if (rows[i].deflate)
            add_deflated(&in, rows[i].hex);
        else
            add_hex(&in, rows[i].hex);
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(write(fds[1], in.b, in.n), (ssize_t)in.n);
        close(fds[1]);
        ahl_err_clear(&err);
        int rc = ahl_p10_read_fd(fds[0], NULL, &f, &err);
        close(fds[0]);
        if (rows[i].message == NULL) {
            if (rc != 0)
                fail_msg("row %zu: %s", i, err.msg);
            expect_u16(&f->ds, 0x0028, 0x0010, 512);
            ahl_dcm_file_free(f);
        } else {
            assert_int_equal(rc, AHL_EPARSE);
            assert_string_equal(err.msg, rows[i].message);
        }
    }
}

static const struct p10_case *find_case(const char *name)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (strcmp(cases[i].name, name) == 0)
            return &cases[i];
    fail_msg("no case %s", name);
    return NULL;
}

static void test_structure_checks(void **state)
{
    (void)state;
    /* The cases whose check functions need a specific file layout. */
    struct p10_case c = *find_case("explicit VR LE, defined-length sequence");
    c.check = check_explicit_le;
    run_case(&c, false);
    c = *find_case("out of order and duplicate elements");
    c.check = check_sorted;
    run_case(&c, false);
}

/* A 2 GB file (sparse: only the header is written) costs the reader almost nothing: the pixel
 * data is skipped with a seek, never read. */
static void test_two_gigabytes_bounded(void **state)
{
    (void)state;
    char path[] = "/tmp/ahl_p10_big_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const uint32_t len = 2000000000u;
    uint8_t h[] = {0x10,
                   0x00,
                   0x10,
                   0x00,
                   0x02,
                   0x00,
                   0x00,
                   0x00,
                   'A',
                   'B',
                   0xE0,
                   0x7F,
                   0x10,
                   0x00,
                   (uint8_t)len,
                   (uint8_t)(len >> 8),
                   (uint8_t)(len >> 16),
                   (uint8_t)(len >> 24)};
    assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
    assert_int_equal(ftruncate(fd, (off_t)sizeof(h) + len), 0);
    close(fd);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    struct ahl_dcm_file *f = NULL;
    struct ahl_err err;
    int rc = ahl_p10_read_path(path, NULL, &f, &err);
    getrusage(RUSAGE_SELF, &after);
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(f->pixel.value_length, len);
    assert_int_equal(f->pixel.value_offset, sizeof(h));
    assert_true(after.ru_maxrss - before.ru_maxrss < 64 * 1024); /* KiB */
    ahl_dcm_file_free(f);
}

/* ---- dictionary --------------------------------------------------------------------------- */

struct dict_case {
    uint32_t tag;
    const char *keyword; /* NULL: unknown */
    const char *vr;
    const char *vm;
    bool retired;
};

static const struct dict_case dict_cases[] = {
    {AHL_DCM_TAG(0x0010, 0x0010), "PatientName", "PN", "1", false},
    {AHL_DCM_TAG(0x0008, 0x0008), "ImageType", "CS", "2-n", false},
    {AHL_DCM_TAG(0x7FE0, 0x0010), "PixelData", "OB", "1", false},
    {AHL_DCM_TAG(0x0028, 0x0106), "SmallestImagePixelValue", "US", "1", false},
    {AHL_DCM_TAG(0xFFFE, 0xE000), "Item", "", "1", false},
    {AHL_DCM_TAG(0x6000, 0x3000), "OverlayData", "OB", "1", false},
    {AHL_DCM_TAG(0x6012, 0x0010), "OverlayRows", "US", "1", false},
    {AHL_DCM_TAG(0x50FE, 0x0005), "CurveDimensions", "US", "1", true},
    {AHL_DCM_TAG(0x0020, 0x3142), "SourceImageIDs", "CS", "1-n", true},
    {AHL_DCM_TAG(0x7F10, 0x0010), "VariablePixelData", "OB", "1", true},
    {AHL_DCM_TAG(0x0009, 0x0010), "PrivateCreator", "LO", "1", false},
    {AHL_DCM_TAG(0x0029, 0x00FF), "PrivateCreator", "LO", "1", false},
    {AHL_DCM_TAG(0x0029, 0x0000), "PrivateGroupLength", "UL", "1", false},
    {AHL_DCM_TAG(0x0008, 0x0000), "GenericGroupLength", "UL", "1", true},
    {AHL_DCM_TAG(0x0002, 0x0000), "FileMetaInformationGroupLength", "UL", "1", false},
    {AHL_DCM_TAG(0x0029, 0x1010), NULL, NULL, NULL, false},            /* private data element */
    {AHL_DCM_TAG(0x6001, 0x0010), "PrivateCreator", "LO", "1", false}, /* odd: not overlay */
    {AHL_DCM_TAG(0x6001, 0x3000), NULL, NULL, NULL, false},
    {AHL_DCM_TAG(0x0003, 0x0010), NULL, NULL, NULL, false}, /* groups 1-7 odd are illegal */
    {AHL_DCM_TAG(0x0008, 0x0001), "LengthToEnd", "UL", "1", true},
    {AHL_DCM_TAG(0x0008, 0x0003), NULL, NULL, NULL, false},
};

static void test_dict_by_tag(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(dict_cases) / sizeof(dict_cases[0]); i++) {
        const struct dict_case *c = &dict_cases[i];
        const struct ahl_dict_entry *e = ahl_dict_by_tag(c->tag);
        if (c->keyword == NULL) {
            if (e != NULL)
                fail_msg("%08X: expected unknown, got %s", c->tag, e->keyword);
            continue;
        }
        if (e == NULL)
            fail_msg("%08X: expected %s, got nothing", c->tag, c->keyword);
        assert_string_equal(e->keyword, c->keyword);
        assert_string_equal(e->vr, c->vr);
        assert_string_equal(e->vm, c->vm);
        assert_int_equal(e->retired, c->retired);
    }
    assert_string_equal(ahl_dict_by_tag(AHL_DCM_TAG(0x0028, 0x0106))->vr_alt, "SS");
    assert_string_equal(ahl_dict_by_tag(AHL_DCM_TAG(0x0028, 0x3006))->vr_alt, "USSS");
}

static void test_dict_by_keyword(void **state)
{
    (void)state;
    const struct ahl_dict_entry *e = ahl_dict_by_keyword("PatientID");
    assert_non_null(e);
    assert_int_equal(e->tag, AHL_DCM_TAG(0x0010, 0x0020));
    e = ahl_dict_by_keyword("OverlayData");
    assert_non_null(e);
    assert_int_equal(e->tag, AHL_DCM_TAG(0x6000, 0x3000));
    assert_int_equal(e->mask, 0xFF00FFFFu);
    assert_null(ahl_dict_by_keyword("patientid")); /* case-sensitive */
    assert_null(ahl_dict_by_keyword("NoSuchKeyword"));
    assert_null(ahl_dict_by_keyword(""));
    assert_null(ahl_dict_by_keyword(NULL));
    /* Every exact entry is found by its keyword and maps back to its own tag. */
    unsigned n = ahl_dict_size(), found = 0;
    assert_true(n > 4500);
    const char *const sample[] = {
        "StudyInstanceUID", "SOPInstanceUID",          "Modality",       "Rows",
        "PixelSpacing",     "ReferencedImageSequence", "NumberOfFrames", "ExtendedOffsetTable"};
    for (size_t i = 0; i < sizeof(sample) / sizeof(sample[0]); i++) {
        e = ahl_dict_by_keyword(sample[i]);
        assert_non_null(e);
        assert_ptr_equal(ahl_dict_by_tag(e->tag), e);
        found++;
    }
    assert_int_equal(found, 8);
}

static void test_dict_vm_multi(void **state)
{
    (void)state;
    assert_false(ahl_dict_vm_multi(ahl_dict_by_keyword("PatientName")));
    assert_true(ahl_dict_vm_multi(ahl_dict_by_keyword("ImageType")));
    assert_true(ahl_dict_vm_multi(ahl_dict_by_keyword("PixelSpacing")));
    assert_false(ahl_dict_vm_multi(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_memory),          cmocka_unit_test(test_cases_file),
        cmocka_unit_test(test_structure_checks),      cmocka_unit_test(test_deflate_cut_short),
        cmocka_unit_test(test_deflate_ends_at_eof),   cmocka_unit_test(test_pipe),
        cmocka_unit_test(test_two_gigabytes_bounded), cmocka_unit_test(test_dict_by_tag),
        cmocka_unit_test(test_dict_by_keyword),       cmocka_unit_test(test_dict_vm_multi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
