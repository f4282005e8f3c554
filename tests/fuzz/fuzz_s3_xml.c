// module: aws
/* Fuzzes the reader of S3's XML replies (aws/s3xml.h) with whole reply bodies, as an endpoint
 * could send them: each input goes through the ListObjectsV2 page parser, the error-body reader
 * and the text decoder. The input is copied into a buffer of exactly its size so that AddressSanitizer
 * sees any read past the end. Nothing may crash, leak or read out of bounds, and what comes out
 * keeps the parser's promises: every key is 1 to AHL_S3_MAX_KEY bytes without NUL, an error leaves
 * a message, a receiver's value comes back as it is. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/s3xml.h"

struct seen {
    size_t keys;
};

static int on_key(void *ctx, const char *key, uint64_t size)
{
    struct seen *s = ctx;
    size_t n = strlen(key);
    (void)size;
    if (n == 0 || n > AHL_S3_MAX_KEY)
        abort();
    /* Stop after a few hundred keys now and then, to take the receiver's exit. */
    return ++s->keys == 300 ? 42 : 0;
}

static int on_timed(void *ctx, const char *key, uint64_t size, int64_t mtime_ms)
{
    /* A time read is 1970 or later; -1 only when absent. */
    if (mtime_ms < -1)
        abort();
    return on_key(ctx, key, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = malloc(size ? size : 1);
    if (!xml)
        return 0;
    memcpy(xml, data, size);

    struct seen s = {0};
    struct ahl_buf token;
    struct ahl_err err = {0};
    int truncated = -1;
    ahl_buf_init(&token, 4 * 1024);
    int rc = ahl_s3xml_list_page(xml, size, on_key, &s, &truncated, &token, &err);
    /* The same page with LastModified read (the collector's listing). */
    struct ahl_buf token2;
    struct ahl_err err2 = {0};
    int truncated2 = -1;
    ahl_buf_init(&token2, 4 * 1024);
    int rc2 = ahl_s3xml_list_page_timed(xml, size, on_timed, &s, &truncated2, &token2, &err2);
    if (rc2 != 0 && rc2 != 42 && rc2 != AHL_EPARSE && rc2 != AHL_ENOMEM)
        abort();
    if ((rc2 == AHL_EPARSE) != (err2.msg[0] != '\0'))
        abort();
    ahl_buf_release(&token2);
    if (rc != 0 && rc != 42 && rc != AHL_EPARSE && rc != AHL_ENOMEM)
        abort();
    if ((rc == AHL_EPARSE) != (err.msg[0] != '\0'))
        abort();
    if (rc == 0 && truncated != 0 && truncated != 1)
        abort();
    if (token.len > token.max)
        abort();
    ahl_buf_release(&token);

    struct ahl_buf code, msg;
    ahl_buf_init(&code, 256);
    ahl_buf_init(&msg, 1024);
    ahl_s3xml_error(xml, size, &code, &msg);
    ahl_buf_release(&code);
    ahl_buf_release(&msg);

    struct ahl_buf text;
    ahl_buf_init(&text, 64 * 1024);
    rc = ahl_s3xml_text(xml, xml + size, &text);
    if (rc != 0 && rc != AHL_EPARSE && rc != AHL_ETOOBIG && rc != AHL_ENOMEM)
        abort();
    /* Decoding never makes text longer than its source (CDATA and references only shrink). */
    if (rc == 0 && text.len > size)
        abort();
    ahl_buf_release(&text);
    free(xml);
    return 0;
}
