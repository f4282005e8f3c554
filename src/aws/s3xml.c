/* The reader of S3's XML replies (s3xml.h). */
#include "aws/s3xml.h"

#include <stdint.h>
#include <string.h>

#include "aws/aws_internal.h"
#include "base/text.h"
#include "base/banned.h"

/* Whether [p, end) holds the bytes of needle. */
static int contains(const char *p, const char *end, const char *needle)
{
    size_t nl = strlen(needle);
    while ((size_t)(end - p) >= nl) {
        const char *c = memchr(p, needle[0], (size_t)(end - p) - nl + 1);
        if (!c)
            return 0;
        if (memcmp(c, needle, nl) == 0)
            return 1;
        p = c + 1;
    }
    return 0;
}

int ahl_s3xml_find(const char *p, const char *end, const char *tag, const char **vs,
                   const char **ve)
{
    size_t tl = strlen(tag);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || (size_t)(end - lt) < tl + 2)
            return -1;
        const char *after = lt + 1 + tl; /* < end: end - lt >= tl + 2 */
        if (memcmp(lt + 1, tag, tl) == 0) {
            if (*after == '/' && end - after >= 2 && after[1] == '>') {
                *vs = *ve = after + 2;
                return 0;
            }
            if (*after == '>') {
                const char *s = after + 1;
                for (const char *q = s; (q = memchr(q, '<', (size_t)(end - q))) != NULL; q++) {
                    if ((size_t)(end - q) < tl + 3)
                        return -1;
                    if (q[1] == '/' && memcmp(q + 2, tag, tl) == 0 && q[2 + tl] == '>') {
                        *vs = s;
                        *ve = q;
                        return 0;
                    }
                }
                return -1;
            }
        }
        p = lt + 1;
    }
    return -1;
}

static int add_utf8(struct ahl_buf *out, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return AHL_EPARSE;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return ahl_buf_add(out, u, n);
}

static int digit_value(char c, int base)
{
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : 99;
    return v < base ? v : -1;
}

/* Appends the character named by the reference between '&' and ';' ("amp", "#65", "#x41"). */
static int add_reference(const char *name, size_t nl, struct ahl_buf *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    if (nl >= 2 && name[0] == '#') {
        int hex = name[1] == 'x' || name[1] == 'X';
        int base = hex ? 16 : 10;
        const char *d = name + 1 + hex, *de = name + nl;
        uint32_t cp = 0;
        if (d == de)
            return AHL_EPARSE;
        for (; d < de; d++) {
            int v = digit_value(*d, base);
            if (v < 0 || cp > 0x10ffff)
                return AHL_EPARSE;
            cp = cp * (uint32_t)base + (uint32_t)v;
        }
        return add_utf8(out, cp);
    }
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (strlen(named[i].name) == nl && memcmp(named[i].name, name, nl) == 0)
            return ahl_buf_addc(out, named[i].c);
    }
    return AHL_EPARSE;
}

int ahl_s3xml_text(const char *s, const char *e, struct ahl_buf *out)
{
    static const char cdata[] = "<![CDATA[";
    const size_t cl = sizeof cdata - 1;
    int rc = 0;
    while (s < e && rc == 0) {
        const char *q = s;
        while (q < e && *q != '&' && *q != '<')
            q++;
        if ((rc = ahl_buf_add(out, s, (size_t)(q - s))) < 0 || q == e)
            return rc;
        if (*q == '<') {
            if ((size_t)(e - q) < cl || memcmp(q, cdata, cl) != 0) {
                rc = ahl_buf_addc(out, '<');
                s = q + 1;
                continue;
            }
            const char *c = q + cl, *close = c;
            while ((size_t)(e - close) >= 3 && memcmp(close, "]]>", 3) != 0)
                close++;
            if ((size_t)(e - close) < 3)
                return AHL_EPARSE;
            rc = ahl_buf_add(out, c, (size_t)(close - c));
            s = close + 3;
            continue;
        }
        /* A reference: at most 12 bytes from '&' to ';' ("&#x0010FFFF;" is the longest). */
        size_t span = (size_t)(e - q) < 13 ? (size_t)(e - q) : 13;
        const char *semi = memchr(q, ';', span);
        if (!semi)
            return AHL_EPARSE;
        rc = add_reference(q + 1, (size_t)(semi - q - 1), out);
        s = semi + 1;
    }
    return rc;
}

void ahl_s3xml_error(const char *xml, size_t n, struct ahl_buf *code, struct ahl_buf *msg)
{
    const char *end = xml + n, *vs, *ve;
    size_t before;
    if (ahl_s3xml_find(xml, end, "Code", &vs, &ve) == 0) {
        before = code->len;
        if (ahl_s3xml_text(vs, ve, code) < 0)
            ahl_buf_truncate(code, before);
    }
    if (ahl_s3xml_find(xml, end, "Message", &vs, &ve) == 0) {
        before = msg->len;
        if (ahl_s3xml_text(vs, ve, msg) < 0)
            ahl_buf_truncate(msg, before);
    }
}

/* Decodes S3's encoding-type=url form in place: %XX escapes, and '+' for a space. */
static int url_decode_plus(struct ahl_buf *b)
{
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] == '+')
            b->data[i] = ' ';
    }
    struct ahl_buf tmp;
    ahl_buf_init(&tmp, b->max);
    int rc = ahl_percent_decode(b->data, b->len, &tmp);
    if (rc == 0) {
        ahl_buf_reset(b);
        rc = ahl_buf_add(b, tmp.data, tmp.len);
    }
    ahl_buf_release(&tmp);
    return rc;
}

/* Whether the content [vs, ve) is exactly word. */
static int is_word(const char *vs, const char *ve, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(ve - vs) == n && memcmp(vs, word, n) == 0;
}

/* n decimal digits at p, or -1. */
static int64_t digits(const char *p, int n)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        int d = digit_value(p[i], 10);
        if (d < 0)
            return -1;
        v = v * 10 + d;
    }
    return v;
}

int ahl_s3xml_time(const char *s, const char *e, int64_t *ms)
{
    /* YYYY-MM-DDTHH:MM:SS, then optionally .fraction, then Z */
    if (e - s < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return AHL_EPARSE;
    int64_t y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
            mi = digits(s + 14, 2), sec = digits(s + 17, 2), frac = 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60)
        return AHL_EPARSE;
    const char *p = s + 19;
    if (p < e && *p == '.') {
        int n = 0;
        for (p++; p < e && digit_value(*p, 10) >= 0; p++, n++)
            if (n < 3)
                frac = frac * 10 + digit_value(*p, 10);
        if (n == 0)
            return AHL_EPARSE;
        for (; n < 3; n++)
            frac *= 10;
    }
    if (p + 1 != e || *p != 'Z')
        return AHL_EPARSE;
    *ms = ((ahl__days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac;
    return 0;
}

int ahl__s3_drop_time(void *ctx, const char *key, uint64_t size, int64_t mtime_ms)
{
    struct ahl__s3_untimed *u = ctx;
    (void)mtime_ms;
    return u->fn(u->ctx, key, size);
}

int ahl_s3xml_list_page(const char *xml, size_t n, ahl_s3_key_fn fn, void *ctx, int *truncated,
                        struct ahl_buf *next_token, struct ahl_err *err)
{
    struct ahl__s3_untimed u = {fn, ctx};
    return ahl_s3xml_list_page_timed(xml, n, ahl__s3_drop_time, &u, truncated, next_token, err);
}

int ahl_s3xml_list_page_timed(const char *xml, size_t n, ahl_s3_entry_fn fn, void *ctx,
                              int *truncated, struct ahl_buf *next_token, struct ahl_err *err)
{
    const char *end = xml + n, *vs, *ve;
    *truncated = 0;
    if (!contains(xml, end, "<ListBucketResult"))
        return ahl_fail(err, AHL_EPARSE, "the endpoint's reply is not a ListBucketResult");
    int url_encoded =
        ahl_s3xml_find(xml, end, "EncodingType", &vs, &ve) == 0 && is_word(vs, ve, "url");
    struct ahl_buf key;
    ahl_buf_init(&key, 4 * AHL_S3_MAX_KEY);
    int rc = 0;
    for (const char *cur = xml; ahl_s3xml_find(cur, end, "Contents", &vs, &ve) == 0; cur = ve) {
        const char *cs = vs, *ce = ve, *ks, *ke, *ss, *se;
        ahl_buf_reset(&key);
        if (ahl_s3xml_find(cs, ce, "Key", &ks, &ke) < 0 || ahl_s3xml_text(ks, ke, &key) < 0 ||
            (url_encoded && url_decode_plus(&key) < 0) || key.len == 0 ||
            key.len > AHL_S3_MAX_KEY || memchr(key.data, '\0', key.len)) {
            rc = ahl_fail(err, AHL_EPARSE, "the listing holds an unreadable or bad Key");
            goto out;
        }
        uint64_t size = 0;
        if (ahl_s3xml_find(cs, ce, "Size", &ss, &se) == 0) {
            for (const char *q = ss; q < se; q++) {
                int d = digit_value(*q, 10);
                if (d < 0 || size > (UINT64_MAX - (uint64_t)d) / 10) {
                    rc = ahl_fail(err, AHL_EPARSE, "bad Size for key '%.200s'", key.data);
                    goto out;
                }
                size = size * 10 + (uint64_t)d;
            }
        }
        int64_t mtime = -1;
        if (ahl_s3xml_find(cs, ce, "LastModified", &ss, &se) == 0 &&
            ahl_s3xml_time(ss, se, &mtime) < 0) {
            rc = ahl_fail(err, AHL_EPARSE, "bad LastModified for key '%.200s'", key.data);
            goto out;
        }
        if ((rc = fn(ctx, key.data, size, mtime)) != 0)
            goto out;
    }
    *truncated = ahl_s3xml_find(xml, end, "IsTruncated", &vs, &ve) == 0 && is_word(vs, ve, "true");
    if (ahl_s3xml_find(xml, end, "NextContinuationToken", &vs, &ve) == 0) {
        size_t before = next_token->len;
        if ((rc = ahl_s3xml_text(vs, ve, next_token)) < 0) {
            ahl_buf_truncate(next_token, before);
            rc = ahl_fail(err, AHL_EPARSE, "the NextContinuationToken is unreadable (%s)",
                          ahl_strerror(rc));
            goto out;
        }
    }
out:
    ahl_buf_release(&key);
    return rc;
}
