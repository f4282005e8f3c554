// module: aws
/* Fuzzes the aws-chunked decoder (aws/chunked.h) as the server drives it: bytes fed in pieces
 * of any size. The input is
 *
 *     4 bytes   x-amz-decoded-content-length, little endian
 *     1 byte    the seed of the piece sizes
 *     rest      the body
 *
 * decoded with the signing key, date, scope and seed signature of the S3 streaming
 * specification's example (the seeds are signed with them, so valid chains are explored too).
 * The body is decoded once whole and once in pieces: the result, the data handed over and its
 * length must be the same, whatever the split. */
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/chunked.h"

struct out {
    struct ahl_sha256_ctx sha;
    uint64_t n;
};

static int sink(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err)
{
    struct out *o = ctx;
    (void)err;
    ahl_sha256_add(&o->sha, p, n);
    o->n += n;
    return 0;
}

static int decode(const uint8_t *p, size_t n, uint64_t declared, unsigned seed,
                  uint8_t hash[AHL_SHA256_LEN], uint64_t *len)
{
    static struct ahl_sigv4_result res;
    if (!res.streaming) {
        res.streaming = 1;
        ahl_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1",
                              "s3", res.signing_key);
        memcpy(res.amz_date, "20130524T000000Z", 17);
        snprintf(res.scope, sizeof res.scope, "20130524/us-east-1/s3/aws4_request");
        memcpy(res.seed_signature,
               "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", 65);
    }
    struct ahl_sigv4_chunked d;
    struct ahl_err err;
    struct out o = {.n = 0};
    int rc = ahl_sha256_begin(&o.sha);
    ahl_sigv4_chunked_init(&d, &res, declared);
    size_t off = 0;
    while (rc == 0 && off < n) {
        size_t piece = fuzz_piece(&seed, n - off);
        rc = ahl_sigv4_chunked_feed(&d, p + off, piece, sink, &o, &err);
        off += piece;
    }
    if (rc == 0)
        rc = ahl_sigv4_chunked_finish(&d, &err);
    ahl_sigv4_chunked_release(&d);
    ahl_sha256_end(&o.sha, hash);
    *len = o.n;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint64_t declared = (uint64_t)data[0] | (uint64_t)data[1] << 8 | (uint64_t)data[2] << 16 |
                        (uint64_t)data[3] << 24;
    unsigned seed = data[4] | 1u;
    uint8_t h1[AHL_SHA256_LEN], h2[AHL_SHA256_LEN];
    uint64_t n1, n2;
    int rc1 = decode(data + 5, size - 5, declared, 0, h1, &n1);
    int rc2 = decode(data + 5, size - 5, declared, seed, h2, &n2);
    /* Data is handed over as it arrives, so a failing stream may have handed over less when cut
     * differently; a good one must give exactly the same bytes. */
    if (rc1 != rc2 || (rc1 == 0 && (n1 != n2 || memcmp(h1, h2, sizeof h1) != 0)))
        abort();
    if (rc1 == 0 && n1 != declared)
        abort();
    return 0;
}
