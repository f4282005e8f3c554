/* Bounded copies, percent-decoding and UTF-8 validation; see text.h. */
#include "base/text.h"

#include <stdint.h>
#include <string.h>

#include "base/codec.h"
#include "base/err.h"
#include "base/banned.h"

int ahl_percent_decode(const char *s, size_t n, struct ahl_buf *out)
{
    int rc = ahl_buf_reserve(out, n);
    if (rc < 0)
        return rc;
    /* Decoding never lengthens, so the reserved room is enough and one check suffices. */
    char *w = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *w++ = s[i];
            continue;
        }
        uint8_t v;
        if (n - i < 3 || ahl_hex_decode(s + i + 1, &v, 1) < 0) {
            out->data[out->len] = '\0';
            return AHL_EPARSE;
        }
        *w++ = (char)v;
        i += 2;
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int ahl_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

void ahl_utf8_trim_cut(char *s, size_t len)
{
    size_t lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0)
        return;
    unsigned char c = (unsigned char)s[lead - 1];
    size_t want = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (c >= 0x80 && len - (lead - 1) < want)
        s[lead - 1] = '\0';
}

int ahl_str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n < cap) {
        memcpy(dst, src ? src : "", n + 1);
        return 0;
    }
    memcpy(dst, src, cap - 1);
    dst[cap - 1] = '\0';
    ahl_utf8_trim_cut(dst, cap - 1);
    return AHL_ETOOBIG;
}

void ahl_str_copy_cut(char *dst, size_t cap, const char *src)
{
    if (ahl_str_copy(dst, cap, src) < 0) {
        /* the cut is what the caller asked for */
    }
}
