// module: api
/* Fuzzes the streaming multipart parser (api/multipart.h) as the STOW-RS spool drives it: bytes
 * fed in pieces of any size. The input is
 *
 *     1 byte    the seed of the piece sizes
 *     line      the boundary, up to the first '\n'
 *     rest      the body
 *
 * The body is parsed once whole and once in pieces: the result and everything the callbacks
 * saw (each part's Content-Type, data and end) must be the same, whatever the split. The media
 * type helpers read the boundary line as a Content-Type too. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/multipart.h"
#include "base/codec.h"

struct seen {
    struct ahl_sha256_ctx sha;
    unsigned parts, ends;
};

static int on_begin(void *ctx, const char *type, struct ahl_err *err)
{
    struct seen *s = ctx;
    (void)err;
    ahl_sha256_add(&s->sha, "[", 1);
    ahl_sha256_add(&s->sha, type, strlen(type) + 1);
    s->parts++;
    return 0;
}

static int on_data(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err)
{
    struct seen *s = ctx;
    (void)err;
    if (n == 0)
        abort(); /* empty pieces are never handed over */
    ahl_sha256_add(&s->sha, p, n);
    return 0;
}

static int on_end(void *ctx, struct ahl_err *err)
{
    struct seen *s = ctx;
    (void)err;
    ahl_sha256_add(&s->sha, "]", 1);
    s->ends++;
    return 0;
}

static const struct ahl_multipart_callbacks cbs = {on_begin, on_data, on_end};

static int parse(const char *boundary, const uint8_t *p, size_t n, unsigned seed,
                 uint8_t hash[AHL_SHA256_LEN], unsigned *parts)
{
    struct ahl_multipart mp;
    struct ahl_err err;
    struct seen s = {.parts = 0};
    int rc = ahl_sha256_begin(&s.sha);
    if (rc == 0)
        rc = ahl_multipart_init(&mp, boundary, &cbs, &s, &err);
    size_t off = 0;
    while (rc == 0 && off < n) {
        size_t piece = fuzz_piece(&seed, n - off);
        rc = ahl_multipart_feed(&mp, p + off, piece, &err);
        off += piece;
    }
    if (rc == 0)
        rc = ahl_multipart_finish(&mp, &err);
    if (rc == 0 && s.ends != s.parts)
        abort(); /* a complete body closed every part it opened */
    ahl_sha256_end(&s.sha, hash);
    *parts = s.parts;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned seed = data[0] | 1u;
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    if (!nl)
        return 0;
    size_t blen = (size_t)(nl - (data + 1));
    char *boundary = malloc(blen + 1);
    if (!boundary)
        return 0;
    memcpy(boundary, data + 1, blen);
    boundary[blen] = '\0';
    char param[AHL_MULTIPART_BOUNDARY_MAX + 2];
    (void)ahl_media_param(boundary, "boundary", param, sizeof param);
    (void)ahl_media_is(boundary, "multipart/related");

    const uint8_t *body = nl + 1;
    size_t n = size - (size_t)(body - data);
    uint8_t h1[AHL_SHA256_LEN], h2[AHL_SHA256_LEN];
    unsigned p1, p2;
    int rc1 = parse(boundary, body, n, 0, h1, &p1);
    int rc2 = parse(boundary, body, n, seed, h2, &p2);
    if (rc1 != rc2 || (rc1 == 0 && (p1 != p2 || memcmp(h1, h2, sizeof h1) != 0)))
        abort();
    free(boundary);
    return 0;
}
