/* The aws-chunked payload of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD request, decoded and verified as
 * it arrives (docs/dicomweb.md#authentication-of-the-body).
 *
 * A client that signs a body it streams sends x-amz-content-sha256:
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD, Content-Encoding: aws-chunked and
 * x-amz-decoded-content-length: <bytes of data>, and frames the data as
 *
 *     <hex size>;chunk-signature=<64 hex>\r\n<size bytes>\r\n   (any number of times)
 *     0;chunk-signature=<64 hex>\r\n\r\n                         (the final chunk)
 *
 * Each chunk's signature is HMAC(signing key, string to sign) over
 *
 *     AWS4-HMAC-SHA256-PAYLOAD\n<x-amz-date>\n<scope>\n<previous signature>\n
 *     <SHA-256 of "">\n<SHA-256 of the chunk's data>
 *
 * chained from the request's own (seed) signature, so no chunk can be dropped, reordered, replaced
 * or added. The decoder hands each chunk's data to a sink as it arrives, before the chunk's
 * signature can be checked: a caller must not act on the data until ahl_sigv4_chunked_finish
 * has returned 0 (the server spools it and stores nothing before then).
 *
 * Calling sequence:
 *     struct ahl_sigv4_chunked d;
 *     ahl_sigv4_chunked_init(&d, &sigv4_result, decoded_length);   // result of ahl_sigv4_verify
 *     while (bytes arrive) if (ahl_sigv4_chunked_feed(&d, p, n, sink, ctx, &err) < 0) refuse;
 *     if (ahl_sigv4_chunked_finish(&d, &err) < 0) refuse;
 *     ahl_sigv4_chunked_release(&d);                               // always
 *
 * Memory is fixed (one chunk-header line of at most AHL_SIGV4_CHUNK_LINE_MAX bytes); bytes may be
 * fed split anywhere. Errors: AHL_EAUTH (detail AHL_SIGV4_FAIL_INVALID) for a signature that does
 * not match; AHL_EPARSE for framing (a bad header line, a missing CRLF, data after the final
 * chunk, more data than x-amz-decoded-content-length, a stream that ends early); AHL_ENOMEM; or
 * what the sink returned. After an error every call fails again.
 */
#ifndef AHL_AWS_CHUNKED_H
#define AHL_AWS_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "aws/sigv4.h"
#include "base/codec.h"
#include "base/err.h"

#define AHL_SIGV4_CHUNK_LINE_MAX 160
#define AHL_SIGV4_STREAMING_ALGORITHM "AWS4-HMAC-SHA256-PAYLOAD"

/* Receives decoded data. 0, or a negative AHL_E* that stops decoding (with err set). */
typedef int (*ahl_sigv4_chunk_sink)(void *ctx, const uint8_t *p, size_t n, struct ahl_err *err);

struct ahl_sigv4_chunked {
    int state, failed;
    uint8_t key[AHL_SHA256_LEN];
    char amz_date[17];
    char scope[sizeof(((struct ahl_sigv4_result *)0)->scope)];
    char prev_sig[AHL_SHA256_HEX_LEN + 1];  /* the previous chunk's (first: the seed) */
    char chunk_sig[AHL_SHA256_HEX_LEN + 1]; /* the one the current chunk claims */
    char line[AHL_SIGV4_CHUNK_LINE_MAX + 1];
    size_t line_len;
    uint64_t chunk_left, chunk_size;
    uint64_t decoded, expected; /* data so far, x-amz-decoded-content-length */
    uint64_t chunks;
    struct ahl_sha256_ctx sha;
};

/* Takes the key, date, scope and seed signature from res (res->streaming must be set). */
void ahl_sigv4_chunked_init(struct ahl_sigv4_chunked *d, const struct ahl_sigv4_result *res,
                            uint64_t decoded_length);
int ahl_sigv4_chunked_feed(struct ahl_sigv4_chunked *d, const uint8_t *p, size_t n,
                           ahl_sigv4_chunk_sink sink, void *ctx, struct ahl_err *err);
/* 0 when the final chunk has been read, verified, and the data's length is the one declared. */
int ahl_sigv4_chunked_finish(struct ahl_sigv4_chunked *d, struct ahl_err *err);
/* Frees the hash state and wipes the key. Safe after any call, and twice. */
void ahl_sigv4_chunked_release(struct ahl_sigv4_chunked *d);

/* The signature of one chunk whose data hashes to data_sha256 (hex), chained from prev_sig.
 * What the decoder checks, and what a signer computes. */
void ahl_sigv4_chunk_signature(const uint8_t key[AHL_SHA256_LEN], const char *amz_date,
                               const char *scope, const char *prev_sig, const char *data_sha256,
                               char out[AHL_SHA256_HEX_LEN + 1]);

#endif /* AHL_AWS_CHUNKED_H */
