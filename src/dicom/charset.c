/* Specific Character Set decoding for the Part-10 reader (see charset.h). The decoder walks a
 * value once: escape sequences switch G0/G1, runs of bytes in one code element are converted
 * together through iconv (or by a small rule for ASCII and JIS X 0201 katakana), and the code
 * elements return to their initial state after the delimiters PS3.5 §6.1.2.5.3 names. */
#include "dicom/charset.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "base/err.h"

#include "base/banned.h"

/* The iconv name of each code element we convert through iconv (NULL: handled by rule). */
static const char *const iconv_names[AHL__CS_COUNT] = {
    [AHL__CS_LATIN1] = "ISO-8859-1",   [AHL__CS_LATIN2] = "ISO-8859-2",
    [AHL__CS_LATIN3] = "ISO-8859-3",   [AHL__CS_LATIN4] = "ISO-8859-4",
    [AHL__CS_CYRILLIC] = "ISO-8859-5", [AHL__CS_ARABIC] = "ISO-8859-6",
    [AHL__CS_GREEK] = "ISO-8859-7",    [AHL__CS_HEBREW] = "ISO-8859-8",
    [AHL__CS_LATIN5] = "ISO-8859-9",   [AHL__CS_THAI] = "TIS-620",
    [AHL__CS_JIS_X0208] = "EUC-JP",    [AHL__CS_JIS_X0212] = "EUC-JP",
    [AHL__CS_KSX1001] = "EUC-KR",      [AHL__CS_GB2312] = "EUC-CN",
    [AHL__CS_GB18030] = "GB18030",     [AHL__CS_GBK] = "GBK",
};

struct term {
    const char *name;
    uint8_t g0, g1, whole;
};

/* Defined terms of PS3.3 C.12.1.1.2, without and with code extensions. */
static const struct term terms[] = {
    {"ISO_IR 6", AHL__CS_ASCII, AHL__CS_NONE, 0},
    {"ISO_IR 100", AHL__CS_ASCII, AHL__CS_LATIN1, 0},
    {"ISO_IR 101", AHL__CS_ASCII, AHL__CS_LATIN2, 0},
    {"ISO_IR 109", AHL__CS_ASCII, AHL__CS_LATIN3, 0},
    {"ISO_IR 110", AHL__CS_ASCII, AHL__CS_LATIN4, 0},
    {"ISO_IR 144", AHL__CS_ASCII, AHL__CS_CYRILLIC, 0},
    {"ISO_IR 127", AHL__CS_ASCII, AHL__CS_ARABIC, 0},
    {"ISO_IR 126", AHL__CS_ASCII, AHL__CS_GREEK, 0},
    {"ISO_IR 138", AHL__CS_ASCII, AHL__CS_HEBREW, 0},
    {"ISO_IR 148", AHL__CS_ASCII, AHL__CS_LATIN5, 0},
    {"ISO_IR 166", AHL__CS_ASCII, AHL__CS_THAI, 0},
    {"ISO_IR 13", AHL__CS_JIS_ROMAN, AHL__CS_JIS_KANA, 0},
    {"ISO_IR 192", AHL__CS_NONE, AHL__CS_NONE, AHL__CS_UTF8},
    {"GB18030", AHL__CS_NONE, AHL__CS_NONE, AHL__CS_GB18030},
    {"GBK", AHL__CS_NONE, AHL__CS_NONE, AHL__CS_GBK},
    {"ISO 2022 IR 6", AHL__CS_ASCII, AHL__CS_NONE, 0},
    {"ISO 2022 IR 100", AHL__CS_ASCII, AHL__CS_LATIN1, 0},
    {"ISO 2022 IR 101", AHL__CS_ASCII, AHL__CS_LATIN2, 0},
    {"ISO 2022 IR 109", AHL__CS_ASCII, AHL__CS_LATIN3, 0},
    {"ISO 2022 IR 110", AHL__CS_ASCII, AHL__CS_LATIN4, 0},
    {"ISO 2022 IR 144", AHL__CS_ASCII, AHL__CS_CYRILLIC, 0},
    {"ISO 2022 IR 127", AHL__CS_ASCII, AHL__CS_ARABIC, 0},
    {"ISO 2022 IR 126", AHL__CS_ASCII, AHL__CS_GREEK, 0},
    {"ISO 2022 IR 138", AHL__CS_ASCII, AHL__CS_HEBREW, 0},
    {"ISO 2022 IR 148", AHL__CS_ASCII, AHL__CS_LATIN5, 0},
    {"ISO 2022 IR 166", AHL__CS_ASCII, AHL__CS_THAI, 0},
    {"ISO 2022 IR 13", AHL__CS_JIS_ROMAN, AHL__CS_JIS_KANA, 0},
    {"ISO 2022 IR 87", AHL__CS_JIS_X0208, AHL__CS_NONE, 0},
    {"ISO 2022 IR 159", AHL__CS_JIS_X0212, AHL__CS_NONE, 0},
    {"ISO 2022 IR 149", AHL__CS_ASCII, AHL__CS_KSX1001, 0},
    {"ISO 2022 IR 58", AHL__CS_ASCII, AHL__CS_GB2312, 0},
};

void ahl__charset_default(struct ahl__charset *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->g0 = AHL__CS_ASCII;
    cs->g1 = AHL__CS_NONE;
}

static const struct term *find_term(const uint8_t *s, size_t n)
{
    /* Defined terms are padded with spaces (and sometimes NULs) and may carry leading spaces. */
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\0'))
        n--;
    while (n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    for (size_t i = 0; i < sizeof(terms) / sizeof(terms[0]); i++) {
        if (strlen(terms[i].name) == n && memcmp(terms[i].name, s, n) == 0)
            return &terms[i];
    }
    return NULL;
}

void ahl__charset_parse(struct ahl__charset *cs, const uint8_t *value, size_t n)
{
    size_t start = 0, index = 0;

    ahl__charset_default(cs);
    for (size_t i = 0; i <= n; i++) {
        if (i < n && value[i] != '\\')
            continue;
        const uint8_t *s = value + start;
        size_t len = i - start;
        size_t trimmed = len;
        while (trimmed > 0 && (s[trimmed - 1] == ' ' || s[trimmed - 1] == '\0'))
            trimmed--;
        if (trimmed > 0) {
            const struct term *t = find_term(s, len);
            if (t == NULL) {
                cs->unknown = true;
            } else if (index == 0) {
                cs->g0 = t->g0;
                cs->g1 = t->g1;
                cs->whole = t->whole;
                if (strncmp(t->name, "ISO 2022", 8) == 0)
                    cs->iso2022 = true;
            } else {
                cs->iso2022 = true; /* a second value means code extensions are in use */
            }
        } else if (index > 0) {
            cs->iso2022 = true;
        }
        index++;
        start = i + 1;
    }
    /* A whole-value encoding excludes code extensions (PS3.3 C.12.1.1.2). */
    if (cs->whole != AHL__CS_NONE)
        cs->iso2022 = false;
}

void ahl__conv_init(struct ahl__conv *c)
{
    memset(c, 0, sizeof(*c));
}

void ahl__conv_release(struct ahl__conv *c)
{
    for (int i = 0; i < AHL__CS_COUNT; i++) {
        if (c->cd[i] != NULL && c->cd[i] != (void *)-1)
            iconv_close((iconv_t)c->cd[i]);
        c->cd[i] = NULL;
    }
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

int ahl__utf8_sanitize(const uint8_t *in, size_t n, struct ahl_buf *out)
{
    size_t i = 0, run = 0;
    int rc;

    while (i < n) {
        uint8_t b = in[i];
        size_t len = 0;
        if (b < 0x80) {
            len = 1;
        } else if (b >= 0xC2 && b <= 0xDF) {
            if (i + 1 < n && (in[i + 1] & 0xC0) == 0x80)
                len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            if (i + 2 < n && (in[i + 1] & 0xC0) == 0x80 && (in[i + 2] & 0xC0) == 0x80) {
                uint32_t cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(in[i + 1] & 0x3F) << 6) |
                              (in[i + 2] & 0x3F);
                if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF))
                    len = 3;
            }
        } else if (b >= 0xF0 && b <= 0xF4) {
            if (i + 3 < n && (in[i + 1] & 0xC0) == 0x80 && (in[i + 2] & 0xC0) == 0x80 &&
                (in[i + 3] & 0xC0) == 0x80) {
                uint32_t cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(in[i + 1] & 0x3F) << 12) |
                              ((uint32_t)(in[i + 2] & 0x3F) << 6) | (in[i + 3] & 0x3F);
                if (cp >= 0x10000 && cp <= 0x10FFFF)
                    len = 4;
            }
        }
        if (len == 0) {
            if ((rc = ahl_buf_add(out, in + i - run, run)) < 0 ||
                (rc = ahl_buf_add(out, replacement, 3)) < 0)
                return rc;
            run = 0;
            i++;
            continue;
        }
        run += len;
        i += len;
    }
    return ahl_buf_add(out, in + n - run, run);
}

static iconv_t get_cd(struct ahl__conv *c, uint8_t cs)
{
    if (c->cd[cs] == NULL) {
        iconv_t cd = iconv_open("UTF-8", iconv_names[cs]);
        c->cd[cs] = (cd == (iconv_t)-1) ? (void *)-1 : (void *)cd;
    }
    return (iconv_t)c->cd[cs];
}

/* Converts n bytes in charset cs through iconv, replacing undecodable bytes with U+FFFD. */
static int iconv_run(struct ahl__conv *c, uint8_t cs, const uint8_t *in, size_t n,
                     struct ahl_buf *out)
{
    iconv_t cd = get_cd(c, cs);
    char tmp[1024];
    char *ip = (char *)in;
    size_t il = n;
    int rc;

    if (cd == (iconv_t)-1) {
        /* iconv lacks the set: keep what is ASCII, mark the rest. */
        for (size_t i = 0; i < n; i++) {
            rc = in[i] < 0x80 ? ahl_buf_addc(out, (char)in[i]) : ahl_buf_add(out, replacement, 3);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    iconv(cd, NULL, NULL, NULL, NULL);
    while (il > 0) {
        char *op = tmp;
        size_t ol = sizeof(tmp);
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        int e = errno;
        if ((rc = ahl_buf_add(out, tmp, (size_t)(op - tmp))) < 0)
            return rc;
        if (r == (size_t)-1) {
            if (e == E2BIG)
                continue;
            /* EILSEQ or EINVAL (incomplete sequence at the end): mark one byte and go on. */
            if ((rc = ahl_buf_add(out, replacement, 3)) < 0)
                return rc;
            ip++;
            il--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    return 0;
}

/* Two-byte G0 sets (JIS X 0208/0212) arrive as 7-bit pairs; EUC-JP is the same code points with
 * the high bit set (and 0x8F before each JIS X 0212 pair). */
static int jis_run(struct ahl__conv *c, uint8_t cs, const uint8_t *in, size_t n,
                   struct ahl_buf *out)
{
    uint8_t tmp[768];
    size_t i = 0;
    int rc;

    while (i < n) {
        size_t k = 0;
        while (i + 1 < n && k + 3 <= sizeof(tmp)) {
            if (cs == AHL__CS_JIS_X0212)
                tmp[k++] = 0x8F;
            tmp[k++] = in[i] | 0x80;
            tmp[k++] = in[i + 1] | 0x80;
            i += 2;
        }
        if ((rc = iconv_run(c, cs, tmp, k, out)) < 0)
            return rc;
        if (i + 1 == n) { /* an odd byte left over cannot be a character */
            if ((rc = ahl_buf_add(out, replacement, 3)) < 0)
                return rc;
            i++;
        }
    }
    return 0;
}

/* Converts a run of bytes that all belong to code element cs. */
static int convert_run(struct ahl__conv *c, uint8_t cs, const uint8_t *in, size_t n,
                       struct ahl_buf *out)
{
    int rc = 0;

    if (n == 0)
        return 0;
    switch (cs) {
    case AHL__CS_ASCII:
    case AHL__CS_JIS_ROMAN: /* JIS X 0201 Roman differs from ASCII only in 0x5C/0x7E; pydicom
                               and DCMTK keep the ASCII reading, and so do we. */
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = in[i] < 0x80 ? ahl_buf_addc(out, (char)in[i]) : ahl_buf_add(out, replacement, 3);
        return rc;
    case AHL__CS_JIS_KANA:
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (in[i] >= 0xA1 && in[i] <= 0xDF) {
                uint32_t cp = 0xFF61 + (uint32_t)(in[i] - 0xA1);
                char u[3] = {(char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 0x3F)),
                             (char)(0x80 | (cp & 0x3F))};
                rc = ahl_buf_add(out, u, 3);
            } else {
                rc = ahl_buf_add(out, replacement, 3);
            }
        }
        return rc;
    case AHL__CS_LATIN1:
        /* The most common set by far: ISO 8859-1 is the first 256 code points, no iconv needed. */
        for (size_t i = 0; i < n && rc == 0; i++) {
            char u[2] = {(char)(0xC0 | (in[i] >> 6)), (char)(0x80 | (in[i] & 0x3F))};
            rc = in[i] < 0x80 ? ahl_buf_addc(out, (char)in[i]) : ahl_buf_add(out, u, 2);
        }
        return rc;
    case AHL__CS_JIS_X0208:
    case AHL__CS_JIS_X0212:
        return jis_run(c, cs, in, n, out);
    case AHL__CS_NONE:
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = ahl_buf_add(out, replacement, 3);
        return rc;
    default:
        return iconv_run(c, cs, in, n, out);
    }
}

/* Recognises the escape sequence at in[0] == ESC; sets *g0 or *g1 and returns its length, or 0
 * when it is not one we know. */
static size_t escape(const uint8_t *in, size_t n, uint8_t *g0, uint8_t *g1)
{
    static const struct {
        const char *seq;
        bool is_g1;
        uint8_t cs;
    } escapes[] = {
        {"\x1b(B", false, AHL__CS_ASCII},      {"\x1b(J", false, AHL__CS_JIS_ROMAN},
        {"\x1b)I", true, AHL__CS_JIS_KANA},    {"\x1b$B", false, AHL__CS_JIS_X0208},
        {"\x1b$(D", false, AHL__CS_JIS_X0212}, {"\x1b$)C", true, AHL__CS_KSX1001},
        {"\x1b$)A", true, AHL__CS_GB2312},     {"\x1b-A", true, AHL__CS_LATIN1},
        {"\x1b-B", true, AHL__CS_LATIN2},      {"\x1b-C", true, AHL__CS_LATIN3},
        {"\x1b-D", true, AHL__CS_LATIN4},      {"\x1b-L", true, AHL__CS_CYRILLIC},
        {"\x1b-G", true, AHL__CS_ARABIC},      {"\x1b-F", true, AHL__CS_GREEK},
        {"\x1b-H", true, AHL__CS_HEBREW},      {"\x1b-M", true, AHL__CS_LATIN5},
        {"\x1b-T", true, AHL__CS_THAI},
    };
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        size_t len = strlen(escapes[i].seq);
        if (len <= n && memcmp(escapes[i].seq, in, len) == 0) {
            if (escapes[i].is_g1)
                *g1 = escapes[i].cs;
            else
                *g0 = escapes[i].cs;
            return len;
        }
    }
    return 0;
}

static bool is_delimiter(uint8_t b, bool pn)
{
    return b == '\\' || b == '\r' || b == '\n' || b == '\f' || b == '\t' ||
           (pn && (b == '^' || b == '='));
}

int ahl__text_to_utf8(struct ahl__conv *c, const struct ahl__charset *cs, bool specific, bool pn,
                      const uint8_t *in, size_t n, struct ahl_buf *out)
{
    uint8_t g0, g1;
    size_t i = 0;
    int rc;

    if (!specific || cs->whole == AHL__CS_UTF8)
        return ahl__utf8_sanitize(in, n, out);
    if (cs->whole != AHL__CS_NONE) {
        struct ahl_buf tmp;
        ahl_buf_init(&tmp, out->max);
        rc = iconv_run(c, cs->whole, in, n, &tmp);
        /* iconv's output is UTF-8 already; the pass guards against a lenient converter. */
        if (rc == 0)
            rc = ahl__utf8_sanitize((const uint8_t *)tmp.data, tmp.len, out);
        ahl_buf_release(&tmp);
        return rc;
    }
    g0 = cs->g0;
    g1 = cs->g1;
    while (i < n) {
        uint8_t b = in[i];
        if (b == 0x1B && cs->iso2022) {
            size_t len = escape(in + i, n - i, &g0, &g1);
            if (len > 0) {
                i += len;
                continue;
            }
            /* An unknown escape is kept as the control character it is. */
            if ((rc = ahl_buf_addc(out, (char)b)) < 0)
                return rc;
            i++;
            continue;
        }
        size_t start = i;
        if (b < 0x80 && (g0 == AHL__CS_JIS_X0208 || g0 == AHL__CS_JIS_X0212)) {
            /* Two-byte G0: everything up to the next escape (or a control character) belongs
             * to it, delimiters included, since 0x5C or 0x5E can be half of a character. */
            while (i < n && in[i] >= 0x21 && in[i] < 0x7F)
                i++;
            if (i == start) { /* a control byte such as CR/LF/space in a two-byte set */
                if ((rc = ahl_buf_addc(out, (char)in[i])) < 0)
                    return rc;
                i++;
                continue;
            }
            if ((rc = convert_run(c, g0, in + start, i - start, out)) < 0)
                return rc;
            continue;
        }
        if (b < 0x80) {
            while (i < n && in[i] < 0x80 && (in[i] != 0x1B || !cs->iso2022) &&
                   !is_delimiter(in[i], pn))
                i++;
            if (i > start && (rc = convert_run(c, g0, in + start, i - start, out)) < 0)
                return rc;
            if (i < n && is_delimiter(in[i], pn)) {
                if ((rc = ahl_buf_addc(out, (char)in[i])) < 0)
                    return rc;
                i++;
                g0 = cs->g0;
                g1 = cs->g1;
            }
            continue;
        }
        while (i < n && in[i] >= 0x80)
            i++;
        if ((rc = convert_run(c, g1, in + start, i - start, out)) < 0)
            return rc;
    }
    return 0;
}
