/* Hex, base64, hashes, CRC32 and random identifiers; see codec.h. Hashes come from OpenSSL 3,
 * CRC32 from zlib. */
#include "base/codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

#include "base/err.h"
#include "base/banned.h"

static const char ahl__hexdig[] = "0123456789abcdef";

void ahl_hex_encode(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = ahl__hexdig[p[i] >> 4];
        out[2 * i + 1] = ahl__hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ahl_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]);
        int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (lo < 0)
            return AHL_EPARSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static const char ahl__b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int ahl_base64_encode(const uint8_t *p, size_t n, struct ahl_buf *out)
{
    size_t olen = (n + 2) / 3 * 4;
    int rc = ahl_buf_reserve(out, olen);
    if (rc < 0)
        return rc;
    char *o = out->data + out->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = ahl__b64[v >> 18];
        *o++ = ahl__b64[(v >> 12) & 63];
        *o++ = ahl__b64[(v >> 6) & 63];
        *o++ = ahl__b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = ahl__b64[v >> 18];
        *o++ = ahl__b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? ahl__b64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len += olen;
    out->data[out->len] = '\0';
    return 0;
}

/* The value of one base64 digit: the standard alphabet ('+', '/') or, with url, the URL-safe one
 * ('-', '_'); -1 for anything else. */
static int b64val(char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int ahl_base64_decode(const char *s, size_t n, struct ahl_buf *out)
{
    if (n % 4 != 0)
        return AHL_EPARSE;
    size_t start = out->len;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad)
                    goto bad;
                v[k] = b64val(c, 0);
                if (v[k] < 0)
                    goto bad;
            }
        }
        uint8_t bytes[3] = {(uint8_t)(v[0] << 2 | v[1] >> 4), (uint8_t)(v[1] << 4 | v[2] >> 2),
                            (uint8_t)(v[2] << 6 | v[3])};
        int rc = ahl_buf_add(out, bytes, (size_t)(3 - pad));
        if (rc < 0) {
            ahl_buf_truncate(out, start);
            return rc;
        }
    }
    return 0;
bad:
    ahl_buf_truncate(out, start);
    return AHL_EPARSE;
}

int ahl_base64url_decode(const char *s, size_t n, struct ahl_buf *out)
{
    /* A last group of one digit carries no whole byte: no encoder writes it. */
    if (n % 4 == 1)
        return AHL_EPARSE;
    size_t start = out->len;
    int rc = ahl_buf_reserve(out, n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0));
    if (rc < 0)
        return rc;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i], 1);
        if (v < 0)
            goto bad;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (char)(uint8_t)(acc >> bits);
        }
    }
    /* The bits left over must be zero, so that every byte string has exactly one encoding. */
    if (acc & ((1u << bits) - 1))
        goto bad;
    out->data[out->len] = '\0';
    return 0;
bad:
    ahl_buf_truncate(out, start);
    return AHL_EPARSE;
}

/* SHA-256 fetched from the default provider once: EVP_sha256() makes every digest look the
 * algorithm up again (a lock and a name search, ~0.5 µs, a few times per request). */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_md(void)
{
    pthread_once(&g_sha256_once, fetch_sha256);
    return g_sha256 ? g_sha256 : EVP_sha256();
}

void ahl_sha256(const void *p, size_t n, uint8_t out[AHL_SHA256_LEN])
{
    unsigned int len = AHL_SHA256_LEN;
    EVP_Digest(p, n, out, &len, sha256_md(), NULL);
}

int ahl_sha256_begin(struct ahl_sha256_ctx *c)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    c->md = md;
    if (!md || EVP_DigestInit_ex(md, sha256_md(), NULL) != 1)
        return AHL_ENOMEM;
    return 0;
}

void ahl_sha256_add(struct ahl_sha256_ctx *c, const void *p, size_t n)
{
    if (c->md)
        EVP_DigestUpdate(c->md, p, n);
}

void ahl_sha256_end(struct ahl_sha256_ctx *c, uint8_t out[AHL_SHA256_LEN])
{
    unsigned int len = AHL_SHA256_LEN;
    memset(out, 0, AHL_SHA256_LEN);
    if (c->md)
        EVP_DigestFinal_ex(c->md, out, &len);
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

void ahl_sha256_hex(const void *p, size_t n, char out[AHL_SHA256_HEX_LEN + 1])
{
    uint8_t d[AHL_SHA256_LEN];
    ahl_sha256(p, n, d);
    ahl_hex_encode(d, sizeof d, out);
}

/* HMAC-SHA256 set up once and copied for each use: HMAC() fetches the MAC and then the digest by
 * name on every call, which cost more than the hashing for SigV4's short messages. */
static EVP_MAC_CTX *g_hmac;
static pthread_once_t g_hmac_once = PTHREAD_ONCE_INIT;

static void fetch_hmac(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (c && EVP_MAC_CTX_set_params(c, params) == 1)
        g_hmac = c;
    else
        EVP_MAC_CTX_free(c);
}

void ahl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                     uint8_t out[AHL_SHA256_LEN])
{
    pthread_once(&g_hmac_once, fetch_hmac);
    EVP_MAC_CTX *c = g_hmac ? EVP_MAC_CTX_dup(g_hmac) : NULL;
    size_t got = 0;
    int ok = c && EVP_MAC_init(c, key, keylen, NULL) == 1 && EVP_MAC_update(c, msg, n) == 1 &&
             EVP_MAC_final(c, out, &got, AHL_SHA256_LEN) == 1 && got == AHL_SHA256_LEN;
    EVP_MAC_CTX_free(c);
    if (!ok) {
        unsigned int len = AHL_SHA256_LEN;
        HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &len);
    }
}

uint32_t ahl_crc32(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return crc;
}

int ahl_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : AHL_EIO;
}

int ahl_random_id(char out[33])
{
    uint8_t b[16];
    if (ahl_random_bytes(b, sizeof b) < 0)
        return AHL_EIO;
    ahl_hex_encode(b, sizeof b, out);
    return 0;
}

int ahl_memeq_ct(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0 ? 0 : 1;
}
