/* The aws-chunked decoder of STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies: a byte-at-a-time state
 * machine for the framing, bulk copies for the data, and the chained chunk signatures checked at
 * the end of each chunk (chunked.h). */
#include "aws/chunked.h"

#include <stdio.h>
#include <string.h>

#include "base/banned.h"

enum {
    ST_LINE,    /* reading "<hex>;chunk-signature=<sig>" up to CRLF */
    ST_DATA,    /* chunk_left bytes of data */
    ST_DATA_CR, /* the CR after the data */
    ST_DATA_LF, /* the LF after the data */
    ST_DONE,    /* the final chunk has been read */
};

static const char sig_key[] = ";chunk-signature=";

void ahl_sigv4_chunked_init(struct ahl_sigv4_chunked *d, const struct ahl_sigv4_result *res,
                            uint64_t decoded_length)
{
    memset(d, 0, sizeof *d);
    d->state = ST_LINE;
    memcpy(d->key, res->signing_key, sizeof d->key);
    memcpy(d->amz_date, res->amz_date, sizeof d->amz_date);
    memcpy(d->scope, res->scope, sizeof d->scope);
    memcpy(d->prev_sig, res->seed_signature, sizeof d->prev_sig);
    d->expected = decoded_length;
}

void ahl_sigv4_chunked_release(struct ahl_sigv4_chunked *d)
{
    uint8_t discard[AHL_SHA256_LEN];
    if (d->sha.md)
        ahl_sha256_end(&d->sha, discard);
    volatile uint8_t *wipe = d->key;
    for (size_t i = 0; i < sizeof d->key; i++)
        wipe[i] = 0;
}

void ahl_sigv4_chunk_signature(const uint8_t key[AHL_SHA256_LEN], const char *amz_date,
                               const char *scope, const char *prev_sig, const char *data_sha256,
                               char out[AHL_SHA256_HEX_LEN + 1])
{
    char sts[512];
    int n = snprintf(sts, sizeof sts, AHL_SIGV4_STREAMING_ALGORITHM "\n%s\n%s\n%s\n%s\n%s",
                     amz_date, scope, prev_sig, AHL_SIGV4_EMPTY_SHA256, data_sha256);
    ahl_sigv4_signature(key, sts, n > 0 && (size_t)n < sizeof sts ? (size_t)n : 0, out);
}

static int fail(struct ahl_sigv4_chunked *d, int rc)
{
    d->failed = rc;
    return rc;
}

/* Parses the header line of a chunk (without its CRLF) and starts the chunk. */
static int start_chunk(struct ahl_sigv4_chunked *d, struct ahl_err *err)
{
    const char *s = d->line;
    size_t hex = strspn(s, "0123456789abcdefABCDEF");
    uint64_t size = 0;
    if (hex == 0 || hex > 16)
        return ahl_fail(err, AHL_EPARSE,
                        "aws-chunked: chunk %llu does not start with a hexadecimal size",
                        (unsigned long long)d->chunks + 1);
    for (size_t i = 0; i < hex; i++) {
        char c = s[i];
        size = size << 4 | (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    const char *sig = s + hex;
    uint8_t raw[AHL_SHA256_LEN];
    if (strncmp(sig, sig_key, sizeof sig_key - 1) != 0 ||
        strlen(sig + sizeof sig_key - 1) != AHL_SHA256_HEX_LEN ||
        ahl_hex_decode(sig + sizeof sig_key - 1, raw, sizeof raw) < 0)
        return ahl_fail(err, AHL_EPARSE,
                        "aws-chunked: chunk %llu's header is not "
                        "'<hex size>;chunk-signature=<64 hex digits>'",
                        (unsigned long long)d->chunks + 1);
    if (size > d->expected - d->decoded)
        return ahl_fail(err, AHL_EPARSE,
                        "aws-chunked: chunk %llu of %llu bytes goes past "
                        "x-amz-decoded-content-length (%llu)",
                        (unsigned long long)d->chunks + 1, (unsigned long long)size,
                        (unsigned long long)d->expected);
    memcpy(d->chunk_sig, sig + sizeof sig_key - 1, sizeof d->chunk_sig);
    d->chunk_size = d->chunk_left = size;
    if (ahl_sha256_begin(&d->sha) < 0)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    d->state = ST_DATA;
    return 0;
}

/* The chunk's data and its CRLF are in: checks its signature and moves the chain on. */
static int end_chunk(struct ahl_sigv4_chunked *d, struct ahl_err *err)
{
    uint8_t h[AHL_SHA256_LEN];
    char hex[AHL_SHA256_HEX_LEN + 1], want[AHL_SHA256_HEX_LEN + 1];
    ahl_sha256_end(&d->sha, h);
    ahl_hex_encode(h, sizeof h, hex);
    ahl_sigv4_chunk_signature(d->key, d->amz_date, d->scope, d->prev_sig, hex, want);
    d->chunks++;
    if (ahl_memeq_ct(want, d->chunk_sig, AHL_SHA256_HEX_LEN) != 0)
        return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                               "The chunk signature of chunk %llu (%llu bytes) does not match "
                               "what was computed",
                               (unsigned long long)d->chunks, (unsigned long long)d->chunk_size);
    memcpy(d->prev_sig, want, sizeof d->prev_sig);
    d->state = d->chunk_size == 0 ? ST_DONE : ST_LINE;
    d->line_len = 0;
    return 0;
}

int ahl_sigv4_chunked_feed(struct ahl_sigv4_chunked *d, const uint8_t *p, size_t n,
                           ahl_sigv4_chunk_sink sink, void *ctx, struct ahl_err *err)
{
    int rc;
    if (d->failed)
        return ahl_fail(err, d->failed, "aws-chunked: the stream has already failed");
    size_t i = 0;
    while (i < n) {
        switch (d->state) {
        case ST_LINE: {
            char c = (char)p[i++];
            if (c == '\n') {
                if (d->line_len == 0 || d->line[d->line_len - 1] != '\r')
                    return fail(d, ahl_fail(err, AHL_EPARSE,
                                            "aws-chunked: chunk %llu's header does not end "
                                            "in CRLF",
                                            (unsigned long long)d->chunks + 1));
                d->line[--d->line_len] = '\0';
                if ((rc = start_chunk(d, err)) < 0)
                    return fail(d, rc);
                if (d->chunk_left == 0)
                    d->state = ST_DATA_CR;
                break;
            }
            if (d->line_len >= AHL_SIGV4_CHUNK_LINE_MAX || c == '\0')
                return fail(d,
                            ahl_fail(err, AHL_EPARSE,
                                     "aws-chunked: chunk %llu's header is longer than %d "
                                     "bytes",
                                     (unsigned long long)d->chunks + 1, AHL_SIGV4_CHUNK_LINE_MAX));
            d->line[d->line_len++] = c;
            d->line[d->line_len] = '\0';
            break;
        }
        case ST_DATA: {
            size_t take = n - i;
            if (take > d->chunk_left)
                take = (size_t)d->chunk_left;
            ahl_sha256_add(&d->sha, p + i, take);
            if (sink && (rc = sink(ctx, p + i, take, err)) < 0)
                return fail(d, rc);
            d->decoded += take;
            d->chunk_left -= take;
            i += take;
            if (d->chunk_left == 0)
                d->state = ST_DATA_CR;
            break;
        }
        case ST_DATA_CR:
        case ST_DATA_LF:
            if (p[i++] != (d->state == ST_DATA_CR ? '\r' : '\n'))
                return fail(d, ahl_fail(err, AHL_EPARSE,
                                        "aws-chunked: chunk %llu's data is not followed by "
                                        "CRLF (is its size right?)",
                                        (unsigned long long)d->chunks + 1));
            if (d->state == ST_DATA_CR)
                d->state = ST_DATA_LF;
            else if ((rc = end_chunk(d, err)) < 0)
                return fail(d, rc);
            break;
        default:
            return fail(
                d, ahl_fail(err, AHL_EPARSE, "aws-chunked: data after the final (0-size) chunk"));
        }
    }
    return 0;
}

int ahl_sigv4_chunked_finish(struct ahl_sigv4_chunked *d, struct ahl_err *err)
{
    if (d->failed)
        return ahl_fail(err, d->failed, "aws-chunked: the stream has already failed");
    if (d->state != ST_DONE)
        return fail(d, ahl_fail(err, AHL_EPARSE,
                                "aws-chunked: the body ends before its final (0-size) chunk, "
                                "after %llu bytes of data",
                                (unsigned long long)d->decoded));
    if (d->decoded != d->expected)
        return fail(d, ahl_fail(err, AHL_EPARSE,
                                "aws-chunked: %llu bytes of data, but "
                                "x-amz-decoded-content-length is %llu",
                                (unsigned long long)d->decoded, (unsigned long long)d->expected));
    return 0;
}
