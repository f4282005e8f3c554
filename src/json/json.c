/* The JSON writer: turns jansson values (or single strings and reals) into JSON text in an
 * ahl_buf, in the exact form json.h promises.
 *
 * Reals print the way Python's repr(float) prints them, which is the shortest digit string that
 * reads back to the same double: fixed notation for decimal exponents -4..15 ("0.0001",
 * "1000000000000000.0"), otherwise scientific with a signed, at least two-digit exponent
 * ("1e-05", "1e+16", "5e-324"). Matching a well-known reference makes the output easy to check
 * and identical to what Python tools around us produce. jansson's own dumper is not used: it
 * prints 17 significant digits ("0.10000000000000001").
 *
 * Every public function leaves the buffer exactly as it was when it fails, so a caller can keep
 * what it had written before.
 */
#include "json/json.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/banned.h"

/* Deeper trees than this are refused rather than recursed into: jansson's parser stops at 2048
 * levels too, so any document we parsed fits. */
#define AHL__JSON_MAX_DEPTH 2048

static const char ahl__hex_digits[] = "0123456789abcdef";

/* ahl_buf_addc without the call when there is room: the writer emits one punctuation byte per
 * value, which makes this the hottest path. Keeps buf.h's invariants (data[len] == '\0'). */
static inline int ahl__putc(struct ahl_buf *out, char c)
{
    if (out->cap && out->len + 2 <= out->cap && out->len < out->max) {
        out->data[out->len++] = c;
        out->data[out->len] = '\0';
        return 0;
    }
    return ahl_buf_addc(out, c);
}

int ahl_json_write_string(const char *s, size_t n, struct ahl_buf *out)
{
    size_t start = out->len;
    /* Most strings need no escaping: copy them in one piece. */
    size_t clean = 0;
    while (clean < n) {
        unsigned char c = (unsigned char)s[clean];
        if (c < 0x20 || c == '"' || c == '\\')
            break;
        clean++;
    }
    if (clean == n) {
        int rc = ahl_buf_reserve(out, n + 2);
        if (rc < 0)
            return rc;
        out->data[out->len] = '"';
        memcpy(out->data + out->len + 1, s, n);
        out->data[out->len + 1 + n] = '"';
        out->len += n + 2;
        out->data[out->len] = '\0';
        return 0;
    }
    int rc = ahl_buf_addc(out, '"');
    size_t run = 0; /* start of the current run of bytes that need no escaping */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = ahl_buf_add(out, s + run, i - run);
        run = i + 1;
        if (rc < 0)
            break;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = ahl__hex_digits[c >> 4];
            esc[5] = ahl__hex_digits[c & 15];
            esc_len = 6;
        }
        rc = ahl_buf_add(out, esc, esc_len);
    }
    if (rc == 0)
        rc = ahl_buf_add(out, s + run, n - run);
    if (rc == 0)
        rc = ahl_buf_addc(out, '"');
    if (rc < 0)
        ahl_buf_truncate(out, start);
    return rc;
}

/* Finds the shortest significant-digit string of d (d finite, > 0). Writes the digits (no
 * trailing zeros, NUL-terminated) to digits and returns the decimal exponent of the first digit
 * (d = 0.d1d2... * 10^(exp+1)). */
static int ahl__shortest_digits(double d, char digits[32])
{
    char tmp[40];
    /* For normal doubles the correctly rounded 15-digit form already has the shortest digits
     * followed by zeros whenever 15 or fewer digits suffice (15 < 53*log10(2)); subnormals have
     * less precision, so they search from one digit up. */
    int p = d >= DBL_MIN ? 15 : 1;
    for (; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp is "D.DDDDe[+-]XX" or "De[+-]XX". */
    size_t nd = 0;
    const char *q = tmp;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    return (int)strtol(q + 1, NULL, 10);
}

int ahl_json_write_real(double d, struct ahl_buf *out)
{
    if (!isfinite(d))
        return AHL_EINVAL;
    char text[48];
    size_t n = 0;
    if (signbit(d))
        text[n++] = '-';
    d = fabs(d);
    if (d == 0) {
        memcpy(text + n, "0.0", 3);
        return ahl_buf_add(out, text, n + 3);
    }
    char digits[32];
    int exp = ahl__shortest_digits(d, digits);
    size_t nd = strlen(digits);
    if (exp >= -4 && exp <= 15) {
        if (exp < 0) {
            text[n++] = '0';
            text[n++] = '.';
            for (int i = -1; i > exp; i--)
                text[n++] = '0';
            memcpy(text + n, digits, nd);
            n += nd;
        } else {
            /* exp+1 digits before the point, zero-filled; at least one after it. */
            size_t before = (size_t)exp + 1;
            for (size_t i = 0; i < before; i++)
                text[n++] = i < nd ? digits[i] : '0';
            text[n++] = '.';
            if (nd > before) {
                memcpy(text + n, digits + before, nd - before);
                n += nd - before;
            } else {
                text[n++] = '0';
            }
        }
    } else {
        text[n++] = digits[0];
        if (nd > 1) {
            text[n++] = '.';
            memcpy(text + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        n += (size_t)snprintf(text + n, sizeof text - n, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
    }
    return ahl_buf_add(out, text, n);
}

static int ahl__newline(struct ahl_buf *out, int indent, int depth)
{
    int rc = ahl_buf_addc(out, '\n');
    for (int i = 0; rc == 0 && i < indent * depth; i++)
        rc = ahl_buf_addc(out, ' ');
    return rc;
}

/* indent 0 means compact. */
static int ahl__write_value(const json_t *v, int indent, int depth, struct ahl_buf *out)
{
    if (depth >= AHL__JSON_MAX_DEPTH)
        return AHL_ETOOBIG;
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return ahl_buf_add(out, "null", 4);
    case JSON_TRUE:
        return ahl_buf_add(out, "true", 4);
    case JSON_FALSE:
        return ahl_buf_add(out, "false", 5);
    case JSON_INTEGER: {
        /* by hand: printf is a measurable share of a metadata dump */
        json_int_t x = json_integer_value(v);
        char digits[24];
        size_t i = sizeof digits;
        unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
        do {
            digits[--i] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0)
            digits[--i] = '-';
        return ahl_buf_add(out, digits + i, sizeof digits - i);
    }
    case JSON_REAL:
        return ahl_json_write_real(json_real_value(v), out);
    case JSON_STRING:
        return ahl_json_write_string(json_string_value(v), json_string_length(v), out);
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        rc = ahl__putc(out, '[');
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = ahl__putc(out, ',');
            if (rc == 0 && indent)
                rc = ahl__newline(out, indent, depth + 1);
            if (rc == 0)
                rc = ahl__write_value(json_array_get(v, i), indent, depth + 1, out);
        }
        if (rc == 0 && indent && n)
            rc = ahl__newline(out, indent, depth);
        return rc ? rc : ahl__putc(out, ']');
    }
    case JSON_OBJECT: {
        rc = ahl__putc(out, '{');
        bool first = true;
        /* jansson iterates objects in insertion order. */
        for (void *it = json_object_iter((json_t *)v); rc == 0 && it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                rc = ahl__putc(out, ',');
            first = false;
            if (rc == 0 && indent)
                rc = ahl__newline(out, indent, depth + 1);
            if (rc == 0)
                rc = ahl_json_write_string(json_object_iter_key(it), json_object_iter_key_len(it),
                                           out);
            if (rc == 0)
                rc = indent ? ahl_buf_add(out, ": ", 2) : ahl__putc(out, ':');
            if (rc == 0)
                rc = ahl__write_value(json_object_iter_value(it), indent, depth + 1, out);
        }
        if (rc == 0 && indent && !first)
            rc = ahl__newline(out, indent, depth);
        return rc ? rc : ahl__putc(out, '}');
    }
    }
    return AHL_EINVAL;
}

int ahl_json_write(const json_t *v, struct ahl_buf *out)
{
    size_t start = out->len;
    int rc = v ? ahl__write_value(v, 0, 0, out) : AHL_EINVAL;
    if (rc < 0)
        ahl_buf_truncate(out, start);
    return rc;
}

int ahl_json_write_pretty(const json_t *v, int indent, struct ahl_buf *out)
{
    if (indent < 1 || indent > 16)
        return AHL_EINVAL;
    size_t start = out->len;
    int rc = v ? ahl__write_value(v, indent, 0, out) : AHL_EINVAL;
    if (rc < 0)
        ahl_buf_truncate(out, start);
    return rc;
}
