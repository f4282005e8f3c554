/* JSON Web Key Sets: parsing a JWKS document into OpenSSL public keys, and finding a token's key.
 *
 * Only what verifies RS256 and ES256 is kept (oidc.h says which keys are skipped and which make
 * the set invalid). An identity provider's set often holds keys for other uses (encryption) or
 * other algorithms beside the signing keys; those are skipped rather than refused, so that a
 * provider adding one does not stop the server. A key of a kind we do use that is malformed is
 * refused with the whole set: it is a mistake in the file, and the old keys (ahl_oidc) or a
 * failed start say so where a silently smaller set would not.
 */
#include "oidc/oidc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/text.h"
#include "base/banned.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384
#define P256_COORD 32

/* One base64url member of key as bytes (at most max). The caller releases out. */
static int key_bytes(json_t *key, size_t index, const char *name, size_t max, struct ahl_buf *out,
                     struct ahl_err *err)
{
    json_t *v = json_object_get(key, name);
    ahl_buf_init(out, max);
    if (!json_is_string(v))
        return ahl_fail(err, AHL_EPARSE, "keys[%zu]: '%s' is missing or not a string", index, name);
    int rc = ahl_base64url_decode(json_string_value(v), json_string_length(v), out);
    if (rc == AHL_ETOOBIG)
        return ahl_fail(err, AHL_EPARSE, "keys[%zu]: '%s' is longer than %zu bytes", index, name,
                        max);
    if (rc < 0)
        return ahl_fail(err, rc, "keys[%zu]: '%s' is not base64url (unpadded, URL-safe alphabet)",
                        index, name);
    if (out->len == 0)
        return ahl_fail(err, AHL_EPARSE, "keys[%zu]: '%s' is empty", index, name);
    return 0;
}

/* A public key from OSSL_PARAMs of the named type. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static int rsa_key(json_t *key, size_t index, EVP_PKEY **out, struct ahl_err *err)
{
    struct ahl_buf n, e;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    int rc;

    ahl_buf_init(&e, 0);
    if ((rc = key_bytes(key, index, "n", RSA_MAX_BITS / 8 + 1, &n, err)) < 0 ||
        (rc = key_bytes(key, index, "e", 8, &e, err)) < 0)
        goto out;
    bn_n = BN_bin2bn((const unsigned char *)n.data, (int)n.len, NULL);
    bn_e = BN_bin2bn((const unsigned char *)e.data, (int)e.len, NULL);
    if (!bn_n || !bn_e) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    int bits = BN_num_bits(bn_n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        rc = ahl_fail(err, AHL_EINVAL, "keys[%zu]: an RSA modulus of %d bits (%d to %d accepted)",
                      index, bits, RSA_MIN_BITS, RSA_MAX_BITS);
        goto out;
    }
    if (!BN_is_odd(bn_e) || BN_is_one(bn_e)) {
        rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: the RSA exponent 'e' is not an odd number > 1",
                      index);
        goto out;
    }
    if (!(bld = OSSL_PARAM_BLD_new()) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    if (!(*out = pkey_from_params("RSA", params)))
        rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: OpenSSL refused the RSA key", index);
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    ahl_buf_release(&n);
    ahl_buf_release(&e);
    return rc;
}

static int ec_key(json_t *key, size_t index, EVP_PKEY **out, struct ahl_err *err)
{
    struct ahl_buf x, y;
    unsigned char point[1 + 2 * P256_COORD];
    int rc;

    ahl_buf_init(&y, 0);
    if ((rc = key_bytes(key, index, "x", P256_COORD, &x, err)) < 0 ||
        (rc = key_bytes(key, index, "y", P256_COORD, &y, err)) < 0)
        goto out;
    if (x.len != P256_COORD || y.len != P256_COORD) {
        rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: P-256 'x' and 'y' must be %d bytes each", index,
                      P256_COORD);
        goto out;
    }
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x.data, P256_COORD);
    memcpy(point + 1 + P256_COORD, y.data, P256_COORD);
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point),
        OSSL_PARAM_END,
    };
    EVP_PKEY *pkey = pkey_from_params("EC", params);
    /* A point off the curve must never reach ECDSA verification (invalid-curve attacks). */
    EVP_PKEY_CTX *check = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    if (!pkey || !check || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: 'x' and 'y' are not a point of P-256", index);
    } else {
        *out = pkey;
    }
    EVP_PKEY_CTX_free(check);
out:
    ahl_buf_release(&x);
    ahl_buf_release(&y);
    return rc;
}

/* Whether a key is meant for verifying signatures: `use` absent or "sig", `key_ops` absent or
 * holding "verify". */
static int for_signatures(json_t *key)
{
    json_t *use = json_object_get(key, "use"), *ops = json_object_get(key, "key_ops");
    if (use && !(json_is_string(use) && !strcmp(json_string_value(use), "sig")))
        return 0;
    if (!ops)
        return 1;
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) if (json_is_string(op) &&
                                       !strcmp(json_string_value(op), "verify")) return 1;
    return 0;
}

void ahl_jwks_free(struct ahl_jwks *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++)
        EVP_PKEY_free(keys->keys[i].pkey);
    free(keys->keys);
    free(keys);
}

size_t ahl_jwks_count(const struct ahl_jwks *keys)
{
    return keys->n;
}

int ahl_jwks_parse(const char *text, size_t n, struct ahl_jwks **out, struct ahl_err *err)
{
    json_error_t jerr;
    json_t *doc = NULL;
    struct ahl_jwks *set = NULL;
    int rc = 0;

    *out = NULL;
    if (n > AHL_OIDC_MAX_JWKS)
        return ahl_fail(err, AHL_ETOOBIG, "the key set is larger than %d bytes", AHL_OIDC_MAX_JWKS);
    if (!(doc = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr)))
        return ahl_fail(err, AHL_EPARSE, "not valid JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
    json_t *list = json_object_get(doc, "keys");
    if (!json_is_array(list)) {
        rc = ahl_fail(err, AHL_EPARSE, "not a JWKS: no \"keys\" array");
        goto out;
    }
    size_t total = json_array_size(list);
    if (!(set = calloc(1, sizeof *set)) ||
        (total && !(set->keys = calloc(total < AHL_OIDC_MAX_KEYS ? total : AHL_OIDC_MAX_KEYS,
                                       sizeof *set->keys)))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    size_t i;
    json_t *key;
    json_array_foreach(list, i, key)
    {
        if (!json_is_object(key)) {
            rc = ahl_fail(err, AHL_EPARSE, "keys[%zu] is not an object", i);
            goto out;
        }
        json_t *kty = json_object_get(key, "kty"), *crv = json_object_get(key, "crv");
        json_t *alg = json_object_get(key, "alg"), *kid = json_object_get(key, "kid");
        if (!json_is_string(kty)) {
            rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: 'kty' is missing or not a string", i);
            goto out;
        }
        enum ahl__jwk_alg type;
        const char *alg_name;
        if (!strcmp(json_string_value(kty), "RSA")) {
            type = AHL__JWK_RS256;
            alg_name = "RS256";
        } else if (!strcmp(json_string_value(kty), "EC") && json_is_string(crv) &&
                   !strcmp(json_string_value(crv), "P-256")) {
            type = AHL__JWK_ES256;
            alg_name = "ES256";
        } else {
            continue; /* another kind of key: not ours to use */
        }
        if (!for_signatures(key) ||
            (alg && !(json_is_string(alg) && !strcmp(json_string_value(alg), alg_name))))
            continue;
        if (kid && (!json_is_string(kid) || json_string_length(kid) > AHL__JWK_MAX_KID)) {
            rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: 'kid' is not a string of at most %d bytes",
                          i, AHL__JWK_MAX_KID);
            goto out;
        }
        if (set->n == AHL_OIDC_MAX_KEYS) {
            rc = ahl_fail(err, AHL_ETOOBIG, "more than %d usable keys", AHL_OIDC_MAX_KEYS);
            goto out;
        }
        struct ahl__jwk *k = &set->keys[set->n];
        k->alg = type;
        if (kid) {
            k->has_kid = 1;
            memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
            if (strlen(k->kid) != json_string_length(kid)) {
                rc = ahl_fail(err, AHL_EPARSE, "keys[%zu]: 'kid' holds a NUL", i);
                goto out;
            }
            for (size_t j = 0; j < set->n; j++) {
                if (set->keys[j].has_kid && set->keys[j].alg == type &&
                    !strcmp(set->keys[j].kid, k->kid)) {
                    rc = ahl_fail(err, AHL_EINVAL, "keys[%zu]: the kid '%.100s' is used twice", i,
                                  k->kid);
                    goto out;
                }
            }
        }
        rc =
            type == AHL__JWK_RS256 ? rsa_key(key, i, &k->pkey, err) : ec_key(key, i, &k->pkey, err);
        if (rc < 0)
            goto out;
        set->n++;
    }
    if (set->n == 0)
        rc = ahl_fail(err, AHL_EINVAL,
                      "no usable key: the set needs an RSA or EC P-256 signing key (use \"sig\")");
out:
    json_decref(doc);
    if (rc < 0)
        ahl_jwks_free(set);
    else
        *out = set;
    return rc;
}

int ahl_jwks_load(const char *path, struct ahl_jwks **out, struct ahl_err *err)
{
    struct ahl_buf text;
    struct stat st;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *out = NULL;
    ahl_buf_init(&text, AHL_OIDC_MAX_JWKS);
    if (fd < 0)
        return ahl_fail(err, AHL_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = ahl_fail(err, AHL_EIO, "%s: not a regular file", path);
        goto out;
    }
    char block[16384];
    for (;;) {
        ssize_t r = read(fd, block, sizeof block);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ahl_fail(err, AHL_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        if ((rc = ahl_buf_add(&text, block, (size_t)r)) < 0) {
            rc = ahl_fail(err, rc, "%s: larger than %d bytes", path, AHL_OIDC_MAX_JWKS);
            goto out;
        }
    }
    if ((rc = ahl_jwks_parse(text.data, text.len, out, err)) < 0) {
        char why[sizeof err->msg];
        if (err) {
            ahl_str_copy_cut(why, sizeof why, err->msg);
            ahl_fail(err, rc, "%s: %s", path, why);
        }
    }
out:
    close(fd);
    ahl_buf_release(&text);
    return rc;
}

const struct ahl__jwk *ahl__jwks_find(const struct ahl_jwks *keys, const char *kid,
                                      enum ahl__jwk_alg alg, struct ahl_err *err)
{
    const char *alg_name = alg == AHL__JWK_RS256 ? "RS256" : "ES256";
    const char *kty = alg == AHL__JWK_RS256 ? "RSA" : "EC P-256";
    if (!kid) {
        if (keys->n != 1) {
            ahl_fail_detail(err, AHL_EAUTH, AHL_OIDC_FAIL_TOKEN,
                            "The token's header has no 'kid', and the server has %zu keys to "
                            "choose from",
                            keys->n);
            return NULL;
        }
        if (keys->keys[0].alg != alg) {
            ahl_fail_detail(err, AHL_EAUTH, AHL_OIDC_FAIL_TOKEN,
                            "The token's alg %s does not fit the server's key (not %s)", alg_name,
                            kty);
            return NULL;
        }
        return &keys->keys[0];
    }
    int other_type = 0;
    for (size_t i = 0; i < keys->n; i++) {
        if (!keys->keys[i].has_kid || strcmp(keys->keys[i].kid, kid) != 0)
            continue;
        if (keys->keys[i].alg == alg)
            return &keys->keys[i];
        other_type = 1;
    }
    if (other_type)
        ahl_fail_detail(err, AHL_EAUTH, AHL_OIDC_FAIL_TOKEN,
                        "The token's alg %s does not fit the key '%.100s' (not %s)", alg_name, kid,
                        kty);
    else
        ahl_fail_detail(err, AHL_EAUTH, AHL_OIDC_FAIL_TOKEN,
                        "The token's kid '%.100s' names no key the server trusts", kid);
    return NULL;
}
