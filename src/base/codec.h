/* Small byte codecs used across modules: hex, base64 (standard alphabet, padded; base64url for
 * decoding), SHA-256, HMAC-SHA-256, CRC32, and random identifiers. None of them allocate except
 * into an ahl_buf. */
#ifndef AHL_BASE_CODEC_H
#define AHL_BASE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define AHL_SHA256_LEN 32
#define AHL_SHA256_HEX_LEN 64

/* Writes 2*n lowercase hex digits and a NUL to out (which holds 2*n+1 bytes). */
void ahl_hex_encode(const uint8_t *p, size_t n, char *out);
/* Decodes exactly 2*n hex digits (either case) into n bytes. 0 or AHL_EPARSE. */
int ahl_hex_decode(const char *hex, uint8_t *out, size_t n);

/* Appends the base64 text of p to out. */
int ahl_base64_encode(const uint8_t *p, size_t n, struct ahl_buf *out);
/* Appends the bytes of base64 text s (length n) to out. Strict: standard alphabet, padding
 * required, no white space. 0, AHL_EPARSE, AHL_ENOMEM or AHL_ETOOBIG (out's max). */
int ahl_base64_decode(const char *s, size_t n, struct ahl_buf *out);
/* Appends the bytes of base64url text s (length n; RFC 4648 section 5, as JOSE uses it) to out.
 * Strict: URL-safe alphabet, no padding, no white space, and the unused bits of the last digit
 * zero, so that each byte string has one encoding. 0, AHL_EPARSE, AHL_ENOMEM or AHL_ETOOBIG. */
int ahl_base64url_decode(const char *s, size_t n, struct ahl_buf *out);

void ahl_sha256(const void *p, size_t n, uint8_t out[AHL_SHA256_LEN]);
/* SHA-256 as 64 lowercase hex digits plus NUL. */
void ahl_sha256_hex(const void *p, size_t n, char out[AHL_SHA256_HEX_LEN + 1]);
/* SHA-256 of data fed in pieces (a file read block by block): begin, add any number of times,
 * end (which frees the state, also after a failed begin). begin: 0 or AHL_ENOMEM. */
struct ahl_sha256_ctx {
    void *md; /* the OpenSSL digest context */
};
int ahl_sha256_begin(struct ahl_sha256_ctx *c);
void ahl_sha256_add(struct ahl_sha256_ctx *c, const void *p, size_t n);
void ahl_sha256_end(struct ahl_sha256_ctx *c, uint8_t out[AHL_SHA256_LEN]);
void ahl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                     uint8_t out[AHL_SHA256_LEN]);

/* Standard (zlib) CRC32 of p, continuing from crc (start with 0). */
uint32_t ahl_crc32(uint32_t crc, const void *p, size_t n);

/* Fills out with n cryptographically random bytes. 0 or AHL_EIO. */
int ahl_random_bytes(void *out, size_t n);
/* Writes a 32-character lowercase hex identifier plus NUL, the shape of AWS data store, image set
 * and job ids. 0 or AHL_EIO. */
int ahl_random_id(char out[33]);

/* Compares n bytes in time independent of where they differ: 0 when equal. */
int ahl_memeq_ct(const void *a, const void *b, size_t n);

#endif /* AHL_BASE_CODEC_H */
