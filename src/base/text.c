/* Percent-decoding and UTF-8 validation; see text.h. */
#include "base/text.h"

#include <stdint.h>

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
