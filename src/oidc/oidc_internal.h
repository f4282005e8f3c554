/* What jwks.c and jwt.c share inside the oidc module: the key set's layout and key lookup. */
#ifndef AHL_OIDC_OIDC_INTERNAL_H
#define AHL_OIDC_OIDC_INTERNAL_H

#include <openssl/evp.h>

#include "oidc/oidc.h"

#define AHL__JWK_MAX_KID 256

/* The JWS algorithm a key verifies: its type decides it (RSA: RS256, EC P-256: ES256). */
enum ahl__jwk_alg {
    AHL__JWK_RS256 = 1,
    AHL__JWK_ES256 = 2,
};

struct ahl__jwk {
    char kid[AHL__JWK_MAX_KID + 1];
    int has_kid;
    enum ahl__jwk_alg alg;
    EVP_PKEY *pkey;
};

struct ahl_jwks {
    struct ahl__jwk *keys;
    size_t n;
    unsigned refs; /* holders of a server's current set (ahl_oidc), under its lock */
};

/* The key a token's header names: by kid (and the algorithm's key type), or without a kid the
 * set's only key. NULL with the reason in err (AHL_EAUTH, AHL_OIDC_FAIL_TOKEN). */
const struct ahl__jwk *ahl__jwks_find(const struct ahl_jwks *keys, const char *kid,
                                      enum ahl__jwk_alg alg, struct ahl_err *err);

#endif /* AHL_OIDC_OIDC_INTERNAL_H */
