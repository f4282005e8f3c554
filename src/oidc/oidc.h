/* OIDC bearer tokens: a JSON Web Key Set, JSON Web Token verification, and keys read from a file
 * that may be replaced while the server runs.
 *
 * What is accepted is deliberately narrow (docs/dicomweb.md#bearer-tokens has the user's view):
 *   - a JWKS (RFC 7517) of RSA keys (kty RSA, n, e; at least 2048 bits) and EC P-256 keys
 *     (kty EC, crv P-256, x, y). A key whose `use` is not "sig", whose `alg` is not the one its
 *     type signs with here (RS256, ES256), or whose kty/crv is another is skipped; a key of a
 *     supported type that is malformed makes the whole set invalid, and so does a set with no
 *     usable key or two usable keys of one type under one kid;
 *   - a compact JWS (RFC 7515) whose header's `alg` is RS256 or ES256 and matches the key's type
 *     (never `none` or HS*: a public key is not a MAC secret), with `kid` choosing the key (no
 *     `kid`: only when the set holds exactly one usable key) and no `crit`;
 *   - claims (RFC 7519): `iss` equal to the configured issuer, `aud` equal to, or an array
 *     holding, the configured audience, `exp` in the future, `nbf` (if present) not in the
 *     future, `iat` not in the future and at most 12 hours old, with 60 seconds of clock skew
 *     each way; `scope` (space-separated) names the access: ahilite:write, else ahilite:read,
 *     else none (the caller decides what none means).
 * Base64url is decoded strictly (base/codec.h) and JSON by jansson with duplicate keys refused.
 * Signatures are checked by OpenSSL 3: RSASSA-PKCS1-v1_5 with SHA-256, and ECDSA P-256 with
 * SHA-256 after turning JOSE's fixed 64-byte r||s into DER.
 *
 * Failures carry a reason in err->detail: AHL_OIDC_FAIL_TOKEN for a token that is malformed,
 * badly signed, expired or not meant for this server (RFC 6750's invalid_token). The messages
 * say what was wrong and quote at most 100 bytes of a claim; they never quote the token.
 *
 * Calling sequence for a server:
 *     struct ahl_oidc_config cfg = {.jwks_path = ..., .issuer = ..., .audience = ...};
 *     struct ahl_oidc *o;
 *     if (ahl_oidc_open(&cfg, &o, &err) < 0) ...      // the file must be a valid set now
 *     ... on any thread: ahl_oidc_verify(o, token, len, now_s, &claims, &err) ...
 *     ahl_oidc_close(o);
 * ahl_oidc_verify stats the file on every call and, when its identity, size or modification time
 * has changed, reads it again: a valid new set replaces the keys, an invalid or unreadable one
 * keeps the old keys and is logged (once per change of the file). It remembers the tokens it has
 * verified (AHL_OIDC_CACHE_SLOTS of them, by SHA-256 of the whole token): a token seen before is
 * accepted again without its signature check while its times still pass and the key set is the
 * one that verified it; anything else is verified in full.
 */
#ifndef AHL_OIDC_OIDC_H
#define AHL_OIDC_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define AHL_OIDC_MAX_TOKEN 16384        /* bytes of a compact JWS */
#define AHL_OIDC_MAX_JWKS (1024 * 1024) /* bytes of a JWKS document */
#define AHL_OIDC_MAX_KEYS 100           /* usable keys in one set */
#define AHL_OIDC_SKEW_S 60              /* clock skew allowed on exp, nbf and iat */
#define AHL_OIDC_MAX_AGE_S (12 * 3600)  /* how old iat may be */
#define AHL_OIDC_CACHE_SLOTS 1024       /* verified tokens remembered by a server */
#define AHL_OIDC_SCOPE_READ "ahilite:read"
#define AHL_OIDC_SCOPE_WRITE "ahilite:write"

/* err->detail of a refused token. */
enum ahl_oidc_fail {
    AHL_OIDC_FAIL_TOKEN = 1, /* malformed, bad signature, expired, wrong issuer or audience */
};

enum ahl_oidc_access {
    AHL_OIDC_ACCESS_NONE = 0,  /* neither scope */
    AHL_OIDC_ACCESS_READ = 1,  /* ahilite:read */
    AHL_OIDC_ACCESS_WRITE = 2, /* ahilite:write (reading included) */
};

/* What a verified token says. */
struct ahl_oidc_claims {
    enum ahl_oidc_access access;
    char sub[128]; /* the subject, cut to fit; "" without one */
    int64_t exp;   /* seconds since the epoch */
    /* The seconds in which exp, nbf and iat all pass, skew included: [valid_from, valid_until). */
    int64_t valid_from, valid_until;
};

/* ---- a key set ------------------------------------------------------------------------------ */

struct ahl_jwks;

/* Parses a JWKS document (n bytes, at most AHL_OIDC_MAX_JWKS). AHL_EPARSE (not JSON, malformed
 * key), AHL_EINVAL (no usable key, duplicate kid, a key too weak), AHL_ETOOBIG, AHL_ENOMEM; err
 * says which key and what. */
int ahl_jwks_parse(const char *text, size_t n, struct ahl_jwks **out, struct ahl_err *err);
/* Reads and parses a JWKS file. As ahl_jwks_parse, and AHL_EIO when the file cannot be read. */
int ahl_jwks_load(const char *path, struct ahl_jwks **out, struct ahl_err *err);
/* The number of usable keys. */
size_t ahl_jwks_count(const struct ahl_jwks *keys);
/* NULL is accepted. */
void ahl_jwks_free(struct ahl_jwks *keys);

/* ---- one token ------------------------------------------------------------------------------ */

struct ahl_jwt_policy {
    const char *issuer;   /* iss must equal it */
    const char *audience; /* aud must equal or hold it */
    int64_t now_s;        /* seconds since the epoch */
};

/* Verifies a compact JWS of n bytes against keys and pol. 0 with *out filled, or AHL_EAUTH with
 * err->detail AHL_OIDC_FAIL_TOKEN and the reason (AHL_ENOMEM when out of memory). */
int ahl_jwt_verify(const struct ahl_jwks *keys, const char *token, size_t n,
                   const struct ahl_jwt_policy *pol, struct ahl_oidc_claims *out,
                   struct ahl_err *err);

/* ---- keys from a file, for a server ---------------------------------------------------------- */

struct ahl_oidc_config {
    const char *jwks_path;
    const char *issuer;
    const char *audience;
};

struct ahl_oidc;

/* Loads the key set (as ahl_jwks_load) and keeps the settings. */
int ahl_oidc_open(const struct ahl_oidc_config *cfg, struct ahl_oidc **out, struct ahl_err *err);
/* Verifies a token with the current keys, re-reading the file first if it changed. Thread-safe.
 * As ahl_jwt_verify. */
int ahl_oidc_verify(struct ahl_oidc *o, const char *token, size_t n, int64_t now_s,
                    struct ahl_oidc_claims *out, struct ahl_err *err);
/* How many verifications were answered from the remembered tokens (for tests and benchmarks). */
uint64_t ahl_oidc_cache_hits(struct ahl_oidc *o);
/* NULL is accepted. */
void ahl_oidc_close(struct ahl_oidc *o);

#endif /* AHL_OIDC_OIDC_H */
