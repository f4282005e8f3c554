/* AWS Signature Version 4: the canonical forms, signing, and verification of incoming requests.
 *
 * Both sides of the project use this module: the HTTP server verifies every request it receives
 * (Authorization header or pre-signed query), and the S3 client signs the requests it sends.
 *
 * The rules follow what the real SDKs do (botocore SigV4Auth/S3SigV4Auth and @smithy/signature-v4),
 * checked against signatures they produced (tests/unit/test_aws_sigv4.c):
 *   - canonical URI: for every service except S3 the path as received on the wire (still
 *     percent-encoded) is normalised (empty and "." segments dropped, ".." pops, a trailing "/"
 *     kept) and then percent-encoded AGAIN, so "%3A" becomes "%253A" (AHL_SIGV4_URI_DOUBLE). For S3
 *     the wire path is used as it is (AHL_SIGV4_URI_S3); the client encodes keys once.
 *   - canonical query: pairs split on '&' and the first '=', percent-decoded, re-encoded with
 *     upper-case hex (space is %20, a raw '+' is a literal plus and becomes %2B), sorted by name
 *     then value, repeated names kept, "name=" for empty values; X-Amz-Signature is left out.
 *   - canonical headers: the names in SignedHeaders, values trimmed with runs of blanks collapsed
 * to one space, repeated headers joined with ','.
 *   - payload hash: the x-amz-content-sha256 header when present (hex, UNSIGNED-PAYLOAD or
 *     STREAMING-AWS4-HMAC-SHA256-PAYLOAD, used literally), otherwise the SHA-256 of the body
 *     (botocore sends no x-amz-content-sha256 for non-S3 services). Pre-signed requests without the
 *     header are signed with the body's hash too, except for S3 (UNSIGNED-PAYLOAD), as the SDKs
 *     pre-sign them.
 *
 * Verification (server side), calling sequence:
 *
 *     struct ahl_sigv4_verifier v;            // one per server, shared by all threads
 *     struct ahl_sigv4_config cfg = {.region = "us-east-1", .service = "medical-imaging",
 *                                    .uri_mode = AHL_SIGV4_URI_DOUBLE, .max_skew_s = 900,
 *                                    .secret = my_lookup, .secret_ctx = creds};
 *     if (ahl_sigv4_verifier_init(&v, &cfg) < 0) ...
 *     // per request, once the body has been read (or with body_sha256_hex NULL, see below):
 *     struct ahl_sigv4_request rq = {.method = "POST", .path = raw_path, .path_len = n,
 *                                    .query = raw_query, .query_len = m,
 *                                    .header = my_header_fn, .header_ctx = conn,
 *                                    .body_sha256_hex = hex};
 *     struct ahl_sigv4_result res;
 *     struct ahl_err err;
 *     if (ahl_sigv4_verify(&v, &rq, now_s, &res, &err) < 0)
 *         reply(err.detail, err.msg);    // the API names the failure kind (api/codec.h)
 *     ...
 *     ahl_sigv4_verifier_release(&v);
 *
 * Errors from ahl_sigv4_verify are AHL_EAUTH (or AHL_ENOMEM/AHL_ETOOBIG/AHL_EINVAL) with
 * err->detail set to one of the enum ahl_sigv4_failure kinds below and a message worded as AWS
 * words it; a failure with detail 0 is the server's own (memory, credential lookup). The AWS error
 * type and HTTP status for each kind are the API's to choose. The signature compare is
 * constant-time.
 *
 * Invariants: nothing here keeps pointers into the caller's request after a call returns; the
 * verifier's signing-key cache is guarded by a mutex, so one verifier serves many threads. All
 * lengths are capped (AHL_SIGV4_MAX_*) so hostile input cannot make the module allocate without
 * bound; oversize input is an error, never a truncation.
 */
#ifndef AHL_AWS_SIGV4_H
#define AHL_AWS_SIGV4_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/err.h"

/* The kinds of authentication failure, left in struct ahl_err's detail. */
enum ahl_sigv4_failure {
    AHL_SIGV4_FAIL_MISSING = 1,  /* no authentication at all */
    AHL_SIGV4_FAIL_INCOMPLETE,   /* malformed authentication */
    AHL_SIGV4_FAIL_UNRECOGNIZED, /* unknown access key or token */
    AHL_SIGV4_FAIL_INVALID,      /* signature mismatch, expired, bad scope */
};

#define AHL_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define AHL_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define AHL_SIGV4_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
/* SHA-256 of the empty string, the payload hash of a request without a body. */
#define AHL_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Caps on what a request may carry into the canonical request. */
#define AHL_SIGV4_MAX_ACCESS_KEY 128
#define AHL_SIGV4_MAX_SCOPE_PART 64       /* region, service */
#define AHL_SIGV4_MAX_SIGNED_HEADERS 1024 /* the "a;b;c" list */
#define AHL_SIGV4_MAX_TOKEN 4096          /* session token */
#define AHL_SIGV4_MAX_QUERY_PARAMS 512
#define AHL_SIGV4_MAX_CANONICAL (64 * 1024) /* whole canonical request */
#define AHL_SIGV4_MAX_SECRET 256
#define AHL_SIGV4_MAX_EXPIRES 604800 /* 7 days, the AWS limit for X-Amz-Expires */

enum ahl_sigv4_uri_mode {
    AHL_SIGV4_URI_DOUBLE, /* every service but S3: normalise, then encode the wire path again */
    AHL_SIGV4_URI_S3,     /* S3: the wire path as it is ("/" when empty) */
};

/* ---- (a) canonical pieces; each appends to out and returns 0, AHL_ENOMEM or AHL_ETOOBIG ---- */

/* Percent-encodes s (n bytes): everything outside A-Za-z0-9-._~ becomes %XX (upper-case hex);
 * with keep_slash, '/' stays as it is. This is the encoding S3 keys need in a path and the
 * encoding of canonical query names and values. */
int ahl_sigv4_uri_encode(const char *s, size_t n, int keep_slash, struct ahl_buf *out);

/* The canonical URI of a raw (wire) path, without the query. */
int ahl_sigv4_canonical_uri(const char *path, size_t n, enum ahl_sigv4_uri_mode mode,
                            struct ahl_buf *out);

/* The canonical query string of a raw query (the text after '?', without it; NULL or empty gives
 * ""). With exclude_signature, X-Amz-Signature pairs are left out (pre-signed requests). A bad
 * %-escape is AHL_EPARSE; more than AHL_SIGV4_MAX_QUERY_PARAMS pairs AHL_ETOOBIG. */
int ahl_sigv4_canonical_query(const char *query, size_t n, int exclude_signature,
                              struct ahl_buf *out);

/* Looks up the nth (0-based) occurrence of a request header whose name matches name (given in
 * lower case; the callback compares case-insensitively). Returns its NUL-terminated value, or NULL
 * when there are no more. The pointer need only stay valid until the next call. */
typedef const char *(*ahl_sigv4_header_fn)(void *ctx, const char *name, size_t nth);

/* Appends "name:value\n" for every name of signed_headers ("a;b;c", lower case, sorted, unique;
 * checked: AHL_EPARSE otherwise), each value trimmed with inner runs of blanks collapsed and
 * repeated headers joined with ','. A listed header the request lacks is AHL_ENOTFOUND. */
int ahl_sigv4_canonical_headers(const char *signed_headers, ahl_sigv4_header_fn header, void *ctx,
                                struct ahl_buf *out);

/* Appends the canonical request: method, canonical URI, canonical query, canonical headers (as
 * produced above, ending in "\n"), signed headers and payload hash, joined by '\n'. */
int ahl_sigv4_canonical_request(const char *method, const char *canonical_uri,
                                const char *canonical_query, const char *canonical_headers,
                                const char *signed_headers, const char *payload_hash,
                                struct ahl_buf *out);

/* Appends "AWS4-HMAC-SHA256\n<amz_date>\n<date8>/<region>/<service>/aws4_request\n<hex sha256 of
 * canonical_request>". amz_date is YYYYMMDD'T'HHMMSS'Z'; the scope date is its first 8 chars. */
int ahl_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                             const char *canonical_request, size_t canonical_len,
                             struct ahl_buf *out);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date8), region), service), "aws4_request"). */
void ahl_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                           const char *service, uint8_t key[AHL_SHA256_LEN]);

/* hex(HMAC(key, string_to_sign)) into hex (65 bytes with the NUL). */
void ahl_sigv4_signature(const uint8_t key[AHL_SHA256_LEN], const char *string_to_sign, size_t n,
                         char hex[AHL_SHA256_HEX_LEN + 1]);

/* Formats epoch seconds as an AWS basic ISO-8601 time "YYYYMMDDTHHMMSSZ" (17 bytes with NUL). */
void ahl_sigv4_format_time(int64_t epoch_s, char out[17]);
/* Parses "YYYYMMDDTHHMMSSZ" (exactly; fields range-checked) into epoch seconds. 0 or AHL_EPARSE. */
int ahl_sigv4_parse_time(const char *s, int64_t *epoch_s);

/* ---- (b) the credentials a request carries ---- */

struct ahl_sigv4_auth {
    int presigned;                                 /* 1: from the query, 0: Authorization header */
    char access_key[AHL_SIGV4_MAX_ACCESS_KEY + 1]; /* Credential=<key>/... */
    char scope_date[9];                            /* YYYYMMDD */
    char region[AHL_SIGV4_MAX_SCOPE_PART + 1];
    char service[AHL_SIGV4_MAX_SCOPE_PART + 1];
    char signed_headers[AHL_SIGV4_MAX_SIGNED_HEADERS + 1];
    char signature[AHL_SHA256_HEX_LEN + 1]; /* lower-case hex as sent (checked: 64 hex digits) */
    /* Pre-signed form only (the header form takes these from the x-amz-date and
     * x-amz-security-token headers, which ahl_sigv4_verify reads itself): */
    char amz_date[17]; /* X-Amz-Date */
    int64_t expires;   /* X-Amz-Expires, seconds, 1..AHL_SIGV4_MAX_EXPIRES */
    char security_token[AHL_SIGV4_MAX_TOKEN + 1]; /* X-Amz-Security-Token; "" when absent */
};

/* Parses "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/medical-imaging/aws4_request,
 * SignedHeaders=host;x-amz-date, Signature=<64 hex>" (components in any order, blanks after
 * commas allowed, each exactly once). AHL_EPARSE (err: AHL_SIGV4_FAIL_INCOMPLETE, saying what is
 * missing or wrong) or AHL_EUNSUPPORTED for another algorithm. */
int ahl_sigv4_parse_authorization(const char *value, struct ahl_sigv4_auth *auth,
                                  struct ahl_err *err);

/* Parses the pre-signed query form from a raw query string (percent-decoding the values).
 * AHL_ENOTFOUND when the query has no X-Amz-Algorithm (not a pre-signed request); AHL_EPARSE
 * (AHL_SIGV4_FAIL_INCOMPLETE) when it is pre-signed but a parameter is missing or bad. */
int ahl_sigv4_parse_presigned(const char *query, size_t n, struct ahl_sigv4_auth *auth,
                              struct ahl_err *err);

/* ---- (c) verification ---- */

/* Finds the secret key for access_key (token: the session token the request carries, or NULL).
 * Writes the NUL-terminated secret (at most cap bytes with the NUL) and returns 0; AHL_ENOTFOUND
 * for an unknown key, AHL_EDENIED for a token that does not belong to the key. */
typedef int (*ahl_sigv4_secret_fn)(void *ctx, const char *access_key, const char *token,
                                   char *secret, size_t cap);

struct ahl_sigv4_config {
    const char *region;  /* the region a scope must name; NULL accepts any */
    const char *service; /* the service a scope must name, e.g. "medical-imaging" */
    enum ahl_sigv4_uri_mode uri_mode;
    int64_t max_skew_s;          /* allowed |request time - now|; 0 means 900 (15 minutes) */
    int allow_unsigned_payload;  /* accept x-amz-content-sha256: UNSIGNED-PAYLOAD */
    /* Accept STREAMING-AWS4-HMAC-SHA256-PAYLOAD on every request, leaving the chunks unchecked;
     * a caller that decodes and verifies the chunks (chunked.h) sets allow_streaming on the
     * requests it can do so for instead. */
    int allow_streaming_payload;
    ahl_sigv4_secret_fn secret;
    void *secret_ctx;
};

#define AHL_SIGV4_KEY_CACHE 16

struct ahl__sigv4_cached_key {
    char access_key[AHL_SIGV4_MAX_ACCESS_KEY + 1];
    char date8[9];
    char region[AHL_SIGV4_MAX_SCOPE_PART + 1];
    char secret[AHL_SIGV4_MAX_SECRET + 1]; /* the key was derived from; a changed secret misses */
    uint8_t key[AHL_SHA256_LEN];
    uint64_t used; /* for least-recently-used replacement; 0 = empty slot */
};

/* Owned by the caller (usually static or inside the server struct). Fields are private. */
struct ahl_sigv4_verifier {
    struct ahl_sigv4_config cfg;
    pthread_mutex_t lock;
    uint64_t tick;
    struct ahl__sigv4_cached_key cache[AHL_SIGV4_KEY_CACHE];
};

struct ahl_sigv4_request {
    const char *method; /* upper case as sent */
    const char *path;   /* the raw request-target path, still percent-encoded, no query */
    size_t path_len;
    const char *query; /* raw text after '?', or NULL */
    size_t query_len;
    ahl_sigv4_header_fn header;
    void *header_ctx;
    /* SHA-256 (64 lower-case hex digits) of the body as received. May be NULL when the body has
     * not been read yet: then the request must carry x-amz-content-sha256 (or be pre-signed), and
     * the result tells the caller which hash the body must have (result.body_hash_to_check). */
    const char *body_sha256_hex;
    /* 1: check only what the headers and query prove before any body is read (the form of the
     * authorization, service and region, time, that the access key exists) and stop there; the
     * signature itself is not checked. A server uses it to turn away unsigned or unknown callers
     * without reading their body, then verifies the whole request once the body is in. */
    int credentials_only;
    /* 1: accept STREAMING-AWS4-HMAC-SHA256-PAYLOAD on this request; the caller verifies the
     * chunks with what the result's streaming members give it (chunked.h). */
    int allow_streaming;
};

struct ahl_sigv4_result {
    char access_key[AHL_SIGV4_MAX_ACCESS_KEY + 1];
    int presigned;
    /* When body_sha256_hex was NULL and the signed payload hash is a real hash: the caller must
     * compare the body's SHA-256 with this before acting (constant time not needed; it is public).
     * "" when there is nothing left to check. */
    char body_hash_to_check[AHL_SHA256_HEX_LEN + 1];
    /* The payload hash signed was STREAMING-AWS4-HMAC-SHA256-PAYLOAD: what verifying its chunks
     * needs. signing_key is a secret: wipe it (ahl_sigv4_chunked_release does) once done. */
    int streaming;
    uint8_t signing_key[AHL_SHA256_LEN];
    char amz_date[17];
    char scope[9 + 2 * (AHL_SIGV4_MAX_SCOPE_PART + 1) + 12 +
               1]; /* date8/region/service/aws4_request */
    char seed_signature[AHL_SHA256_HEX_LEN + 1];
};

/* Copies cfg (the strings must outlive the verifier). 0 or AHL_EINVAL (no service or secret
 * callback). */
int ahl_sigv4_verifier_init(struct ahl_sigv4_verifier *v, const struct ahl_sigv4_config *cfg);
void ahl_sigv4_verifier_release(struct ahl_sigv4_verifier *v);

/* Verifies one request at wall-clock time now_s (epoch seconds). 0 when the signature is good;
 * otherwise AHL_EAUTH with err set (detail an AHL_SIGV4_FAIL_* kind, message as AWS words it), or
 * AHL_ENOMEM / AHL_ETOOBIG / AHL_EINVAL (caller error, e.g. no body hash and no
 * x-amz-content-sha256). debug_canonical, if not NULL, receives the canonical request the server
 * computed, for debug logs only: unlike some AWS services we never send it to a client that failed
 * to authenticate. */
int ahl_sigv4_verify(struct ahl_sigv4_verifier *v, const struct ahl_sigv4_request *rq,
                     int64_t now_s, struct ahl_sigv4_result *res, struct ahl_err *err,
                     struct ahl_buf *debug_canonical);

/* ---- (d) signing outgoing requests ---- */

struct ahl_sigv4_header {
    const char *name; /* lower case */
    const char *value;
};

struct ahl_sigv4_credentials {
    const char *access_key;
    const char *secret_key;
    const char *session_token; /* NULL or "" when none */
};

struct ahl_sigv4_sign_input {
    const char *method;
    const char *path;  /* wire form, already percent-encoded ("/bucket/my%20key") */
    const char *query; /* wire form without '?', or NULL */
    /* Headers to sign besides the ones the signer adds; must include "host". At most 32. */
    const struct ahl_sigv4_header *headers;
    size_t n_headers;
    const char *payload_hash; /* hex SHA-256, UNSIGNED-PAYLOAD, ... */
    const char *region;
    const char *service; /* "s3" */
    enum ahl_sigv4_uri_mode uri_mode;
    int64_t now_s;
    /* kSigning of the secret for now_s's date, region and service (ahl_sigv4_signing_key), when
     * the caller keeps it from one request to the next as AWS's SDKs do; NULL: derived here. */
    const uint8_t *signing_key;
};

/* What the caller must add to the request: x-amz-date, x-amz-content-sha256 (always, S3 requires
 * it), x-amz-security-token (when the credentials have one) and Authorization. */
struct ahl_sigv4_signed {
    char amz_date[17];
    char content_sha256[80];
    struct ahl_buf authorization; /* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., ..." */
};

/* Signs in: signs the given headers plus x-amz-date, x-amz-content-sha256 and
 * x-amz-security-token. out->authorization is initialised here; release it with
 * ahl_buf_release. 0, AHL_EINVAL (missing host, too many headers), AHL_ENOMEM, AHL_ETOOBIG. */
int ahl_sigv4_sign(const struct ahl_sigv4_sign_input *in, const struct ahl_sigv4_credentials *cred,
                   struct ahl_sigv4_signed *out);

#endif /* AHL_AWS_SIGV4_H */
