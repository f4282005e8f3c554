/* Internal to the DICOM module: Specific Character Set (0008,0005) handling for the Part-10
 * reader. Turns text values into UTF-8 according to PS3.5 §6.1: single-byte sets (ISO_IR 100 ...
 * 166), ISO_IR 192 (UTF-8), GB18030 and GBK as whole-value encodings, and ISO 2022 code
 * extensions (escape sequences switching G0/G1 among ASCII, JIS X 0201/0208/0212, KS X 1001,
 * GB 2312 and the ISO 8859 sets), with the reset to the initial set at value, line and (for PN)
 * component delimiters.
 *
 * Output is always valid UTF-8: bytes that do not decode in the set in force become U+FFFD, so
 * nothing is dropped silently. Conversions go through glibc iconv; the descriptors are opened
 * lazily and cached in a struct ahl__conv per reader (not shared between threads).
 */
#ifndef AHL_DICOM_CHARSET_H
#define AHL_DICOM_CHARSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Code elements (what G0/G1 can hold) and whole-value encodings. */
enum ahl__cs {
    AHL__CS_NONE = 0,
    AHL__CS_ASCII,
    AHL__CS_LATIN1,    /* ISO_IR 100 */
    AHL__CS_LATIN2,    /* ISO_IR 101 */
    AHL__CS_LATIN3,    /* ISO_IR 109 */
    AHL__CS_LATIN4,    /* ISO_IR 110 */
    AHL__CS_CYRILLIC,  /* ISO_IR 144 */
    AHL__CS_ARABIC,    /* ISO_IR 127 */
    AHL__CS_GREEK,     /* ISO_IR 126 */
    AHL__CS_HEBREW,    /* ISO_IR 138 */
    AHL__CS_LATIN5,    /* ISO_IR 148 */
    AHL__CS_THAI,      /* ISO_IR 166 */
    AHL__CS_JIS_ROMAN, /* ISO_IR 14 (G0 of ISO_IR 13) */
    AHL__CS_JIS_KANA,  /* ISO_IR 13 (G1) */
    AHL__CS_JIS_X0208, /* ISO 2022 IR 87 (G0, two bytes) */
    AHL__CS_JIS_X0212, /* ISO 2022 IR 159 (G0, two bytes) */
    AHL__CS_KSX1001,   /* ISO 2022 IR 149 (G1, two bytes) */
    AHL__CS_GB2312,    /* ISO 2022 IR 58 (G1, two bytes) */
    AHL__CS_UTF8,      /* ISO_IR 192 (whole value) */
    AHL__CS_GB18030,   /* GB18030 (whole value) */
    AHL__CS_GBK,       /* GBK (whole value) */
    AHL__CS_COUNT
};

struct ahl__charset {
    uint8_t g0, g1; /* initial code elements */
    uint8_t whole;  /* a whole-value encoding (UTF8/GB18030/GBK) or NONE */
    bool iso2022;   /* escape sequences are interpreted */
    bool unknown;   /* a defined term was not recognised (its bytes decode as ASCII) */
};

struct ahl__conv {
    void *cd[AHL__CS_COUNT]; /* iconv_t to UTF-8, (void *)-1 when unavailable, NULL unopened */
};

/* The default repertoire (no Specific Character Set): ASCII. */
void ahl__charset_default(struct ahl__charset *cs);
/* Parses the raw value of (0008,0005) (backslash-separated defined terms). Unknown terms set
 * cs->unknown and leave the default in their place. */
void ahl__charset_parse(struct ahl__charset *cs, const uint8_t *value, size_t n);

void ahl__conv_init(struct ahl__conv *c);
void ahl__conv_release(struct ahl__conv *c);

/* Appends the UTF-8 form of the n bytes at in to out. specific: the VR is one the character set
 * applies to (SH LO ST LT PN UC UT); otherwise the bytes are taken as the default repertoire.
 * pn: PN component delimiters reset the code elements. 0 or AHL_ENOMEM/AHL_ETOOBIG from out. */
int ahl__text_to_utf8(struct ahl__conv *c, const struct ahl__charset *cs, bool specific, bool pn,
                      const uint8_t *in, size_t n, struct ahl_buf *out);

/* Appends in to out with every byte that is not part of a valid UTF-8 sequence replaced by
 * U+FFFD. */
int ahl__utf8_sanitize(const uint8_t *in, size_t n, struct ahl_buf *out);

#endif /* AHL_DICOM_CHARSET_H */
