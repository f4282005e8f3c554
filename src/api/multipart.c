/* The streaming multipart parser (multipart.h). The delimiter "\r\n--<boundary>" is matched byte
 * by byte with the matched prefix held back; since a boundary holds no CR, a mismatch can only
 * restart the match at the byte that broke it, so no backtracking table is needed. Runs of data
 * without a CR are handed over in one call. */
#include "api/multipart.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "base/text.h"
#include "base/banned.h"

enum {
    ST_BODY,     /* data of a part (or the preamble), looking for the delimiter */
    ST_AFTER,    /* just after a delimiter: "--", blanks or CRLF */
    ST_CLOSE,    /* after "-" of "--" */
    ST_PAD,      /* blanks after a delimiter */
    ST_LF,       /* the LF ending a delimiter line */
    ST_HEADERS,  /* a part's header lines */
    ST_EPILOGUE, /* after the close delimiter: ignored */
};

static bool is_bchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

int ahl_multipart_init(struct ahl_multipart *mp, const char *boundary,
                       const struct ahl_multipart_callbacks *cb, void *ctx, struct ahl_err *err)
{
    size_t n = boundary ? strlen(boundary) : 0;
    memset(mp, 0, sizeof *mp);
    if (n == 0 || n > AHL_MULTIPART_BOUNDARY_MAX || boundary[n - 1] == ' ')
        return ahl_fail(err, AHL_EINVAL,
                        "The multipart boundary must be 1 to 70 characters, not ending in a space");
    for (size_t i = 0; i < n; i++)
        if (!is_bchar(boundary[i]))
            return ahl_fail(err, AHL_EINVAL,
                            "The multipart boundary holds a character RFC 2046 does not allow");
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary, n + 1);
    mp->delim_len = n + 4;
    mp->match = 2; /* the first delimiter may open the body, without a CRLF before it */
    mp->state = ST_BODY;
    mp->cb = *cb;
    mp->ctx = ctx;
    return 0;
}

static int emit(struct ahl_multipart *mp, const void *p, size_t n, struct ahl_err *err)
{
    if (!mp->in_part || n == 0 || !mp->cb.data)
        return 0;
    return mp->cb.data(mp->ctx, p, n, err);
}

static int fail(struct ahl_multipart *mp, int rc)
{
    mp->failed = rc;
    return rc;
}

/* The header block of a part is complete (without its final empty line): finds Content-Type. */
static int parse_headers(struct ahl_multipart *mp, struct ahl_err *err)
{
    char *line = mp->headers;
    mp->content_type[0] = '\0';
    while (*line) {
        char *eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon && (size_t)(colon - line) == 12 && !strncasecmp(line, "Content-Type", 12)) {
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t len = strlen(v);
            while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
                len--;
            if (len > AHL_MULTIPART_TYPE_MAX)
                return ahl_fail(err, AHL_EPARSE,
                                "multipart: part %u's Content-Type is longer than %d bytes",
                                mp->parts + 1, AHL_MULTIPART_TYPE_MAX);
            memcpy(mp->content_type, v, len);
            mp->content_type[len] = '\0';
        }
        if (!eol)
            break;
        line = eol + 2;
    }
    return 0;
}

int ahl_multipart_feed(struct ahl_multipart *mp, const uint8_t *p, size_t n, struct ahl_err *err)
{
    int rc;
    if (mp->failed)
        return ahl_fail(err, mp->failed, "multipart: the body has already failed");
    size_t i = 0;
    while (i < n) {
        switch (mp->state) {
        case ST_BODY:
            if (mp->match == 0) {
                const uint8_t *cr = memchr(p + i, '\r', n - i);
                size_t run = cr ? (size_t)(cr - (p + i)) : n - i;
                if ((rc = emit(mp, p + i, run, err)) < 0)
                    return fail(mp, rc);
                i += run;
                if (i == n)
                    break;
            }
            if ((char)p[i] == mp->delim[mp->match]) {
                i++;
                if (++mp->match < mp->delim_len)
                    break;
                /* A delimiter: the part before it ends. */
                mp->match = 0;
                if (mp->in_part) {
                    mp->in_part = 0;
                    if (mp->cb.end && (rc = mp->cb.end(mp->ctx, err)) < 0)
                        return fail(mp, rc);
                }
                mp->state = ST_AFTER;
                break;
            }
            /* The held-back bytes were data after all; the byte that broke the match may start
             * a new one (only a CR can, and the held bytes after the first hold none). */
            if ((rc = emit(mp, mp->delim, mp->match, err)) < 0)
                return fail(mp, rc);
            mp->match = 0;
            if (p[i] == '\r') {
                mp->match = 1;
                i++;
            }
            break;
        case ST_AFTER:
        case ST_PAD: {
            char c = (char)p[i++];
            if (c == '-' && mp->state == ST_AFTER)
                mp->state = ST_CLOSE;
            else if (c == ' ' || c == '\t')
                mp->state = ST_PAD;
            else if (c == '\r')
                mp->state = ST_LF;
            else
                return fail(mp, ahl_fail(err, AHL_EPARSE,
                                         "multipart: the delimiter before part %u is not "
                                         "followed by CRLF or \"--\"",
                                         mp->parts + 1));
            break;
        }
        case ST_CLOSE:
            if (p[i++] != '-')
                return fail(mp, ahl_fail(err, AHL_EPARSE,
                                         "multipart: the delimiter before part %u is not "
                                         "followed by CRLF or \"--\"",
                                         mp->parts + 1));
            mp->state = ST_EPILOGUE;
            break;
        case ST_LF:
            if (p[i++] != '\n')
                return fail(mp, ahl_fail(err, AHL_EPARSE,
                                         "multipart: the delimiter line before part %u does "
                                         "not end in CRLF",
                                         mp->parts + 1));
            mp->state = ST_HEADERS;
            mp->headers_len = 0;
            mp->headers[0] = '\0';
            break;
        case ST_HEADERS: {
            if (mp->headers_len >= AHL_MULTIPART_HEADERS_MAX)
                return fail(mp, ahl_fail(err, AHL_EPARSE,
                                         "multipart: part %u's headers are longer than %d bytes",
                                         mp->parts + 1, AHL_MULTIPART_HEADERS_MAX));
            char c = (char)p[i++];
            if (c == '\0')
                return fail(mp, ahl_fail(err, AHL_EPARSE,
                                         "multipart: part %u's headers hold a NUL byte",
                                         mp->parts + 1));
            mp->headers[mp->headers_len++] = c;
            mp->headers[mp->headers_len] = '\0';
            size_t h = mp->headers_len;
            bool empty_block = h == 2 && !memcmp(mp->headers, "\r\n", 2);
            bool end = h >= 4 && !memcmp(mp->headers + h - 4, "\r\n\r\n", 4);
            if (!empty_block && !end)
                break;
            mp->headers[empty_block ? 0 : h - 2] = '\0';
            if ((rc = parse_headers(mp, err)) < 0)
                return fail(mp, rc);
            mp->parts++;
            mp->in_part = 1;
            mp->state = ST_BODY;
            if (mp->cb.begin && (rc = mp->cb.begin(mp->ctx, mp->content_type, err)) < 0)
                return fail(mp, rc);
            break;
        }
        default: /* the epilogue */
            i = n;
            break;
        }
    }
    return 0;
}

int ahl_multipart_finish(struct ahl_multipart *mp, struct ahl_err *err)
{
    if (mp->failed)
        return ahl_fail(err, mp->failed, "multipart: the body has already failed");
    if (mp->state == ST_HEADERS)
        return fail(mp, ahl_fail(err, AHL_EPARSE,
                                 "multipart: the body ends inside the headers of part %u",
                                 mp->parts + 1));
    if (mp->state != ST_EPILOGUE && mp->parts == 0)
        return fail(mp, ahl_fail(err, AHL_EPARSE,
                                 "multipart: the body ends before its first part (is the "
                                 "boundary right?)"));
    if (mp->state != ST_EPILOGUE)
        return fail(mp, ahl_fail(err, AHL_EPARSE,
                                 "multipart: the body ends inside part %u, before the close "
                                 "delimiter",
                                 mp->parts));
    return 0;
}

int ahl_media_is(const char *media_type, const char *want)
{
    const char *s = media_type ? media_type : "";
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, ";");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(s, want, n) == 0;
}

int ahl_media_param(const char *media_type, const char *name, char *out, size_t cap)
{
    const char *s = media_type ? strchr(media_type, ';') : NULL;
    size_t name_len = strlen(name);
    while (s && *s == ';') {
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        const char *key = s;
        size_t key_len = strcspn(s, "=;");
        while (key_len && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t'))
            key_len--;
        s += strcspn(s, "=;");
        if (*s != '=')
            continue;
        s++;
        while (*s == ' ' || *s == '\t')
            s++;
        char val[1024];
        size_t len = 0;
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                if (len + 1 >= sizeof val)
                    return AHL_ETOOBIG;
                val[len++] = *s++;
            }
            if (*s != '"')
                return AHL_EPARSE;
            s++;
            s += strcspn(s, ";");
        } else {
            len = strcspn(s, ";");
            while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
            if (len + 1 >= sizeof val)
                return AHL_ETOOBIG;
            memcpy(val, s, len);
            s += strcspn(s, ";");
        }
        val[len] = '\0';
        if (key_len == name_len && !strncasecmp(key, name, name_len))
            return ahl_str_copy(out, cap, val) < 0 ? AHL_ETOOBIG : 0;
    }
    return AHL_ENOTFOUND;
}
