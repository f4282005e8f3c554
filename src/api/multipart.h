/* A streaming parser of multipart bodies (RFC 2046 5.1, as multipart/related uses it: PS3.18
 * STOW-RS requests), fed bytes as they arrive, split anywhere.
 *
 * The body is: an ignored preamble, then parts each opened by a delimiter line "--<boundary>"
 * (optionally followed by blanks) and their header lines up to an empty line, and closed by the
 * next delimiter "\r\n--<boundary>"; "--<boundary>--" ends the last part and whatever follows is
 * ignored. Each part's Content-Type (or "" without one) is handed to begin, its bytes to data as
 * they arrive, and end marks its close. The parser holds back at most the delimiter's length of
 * data and one part's header block (AHL_MULTIPART_HEADERS_MAX bytes), so memory is fixed.
 *
 * Calling sequence:
 *     struct ahl_multipart mp;
 *     if (ahl_multipart_init(&mp, boundary, &callbacks, ctx, &err) < 0) ...
 *     for each piece of the body: if (ahl_multipart_feed(&mp, p, n, &err) < 0) refuse;
 *     if (ahl_multipart_finish(&mp, &err) < 0) refuse;     // a body without its close delimiter
 *
 * Errors are AHL_EPARSE with a message saying what and where (the part's number), or what a
 * callback returned; after one, every call fails again. Nothing is allocated.
 */
#ifndef AHL_API_MULTIPART_H
#define AHL_API_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define AHL_MULTIPART_BOUNDARY_MAX 70 /* RFC 2046 */
#define AHL_MULTIPART_HEADERS_MAX 8192
#define AHL_MULTIPART_TYPE_MAX 256

struct ahl_multipart_callbacks {
    int (*begin)(void *ctx, const char *content_type, struct ahl_err *err);
    int (*data)(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err);
    int (*end)(void *ctx, struct ahl_err *err);
};

struct ahl_multipart {
    int state, failed;
    char delim[4 + AHL_MULTIPART_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
    size_t delim_len, match;                        /* bytes of delim matched and held back */
    int in_part;                                    /* a part's data is being read */
    unsigned parts;                                 /* parts begun */
    char headers[AHL_MULTIPART_HEADERS_MAX + 1];
    size_t headers_len;
    char content_type[AHL_MULTIPART_TYPE_MAX + 1];
    struct ahl_multipart_callbacks cb;
    void *ctx;
};

/* boundary: the Content-Type's boundary parameter, unquoted: 1 to 70 characters of RFC 2046's
 * bchars (AHL_EINVAL otherwise). */
int ahl_multipart_init(struct ahl_multipart *mp, const char *boundary,
                       const struct ahl_multipart_callbacks *cb, void *ctx, struct ahl_err *err);
int ahl_multipart_feed(struct ahl_multipart *mp, const uint8_t *p, size_t n, struct ahl_err *err);
/* 0 when the close delimiter has been read; AHL_EPARSE for a body that ends before it. */
int ahl_multipart_finish(struct ahl_multipart *mp, struct ahl_err *err);

/* The value of parameter name (case-insensitive) of a media type ("multipart/related;
 * type=\"application/dicom\"; boundary=xyz"), unquoted, into out. 0, AHL_ENOTFOUND when absent,
 * AHL_EPARSE for an unterminated quote, AHL_ETOOBIG when longer than cap - 1. */
int ahl_media_param(const char *media_type, const char *name, char *out, size_t cap);
/* Whether the media type's type/subtype (before any ';', blanks around it ignored) is want,
 * compared case-insensitively. */
int ahl_media_is(const char *media_type, const char *want);

#endif /* AHL_API_MULTIPART_H */
