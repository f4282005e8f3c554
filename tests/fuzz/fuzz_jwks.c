// module: oidc
/* Fuzzes the JWKS parser (ahl_jwks_parse) with whole key-set documents, as a key file could hold
 * them after a bad fetch or an edit: JSON of any shape, keys of every type, base64url of any
 * length, points off the curve, moduli too short or too long. The input is copied into a buffer
 * of exactly its size so that AddressSanitizer sees any read past the end. Nothing may crash or
 * leak; a set that parses holds between 1 and AHL_OIDC_MAX_KEYS keys, and a failure leaves no set
 * and a message. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct ahl_jwks *keys = NULL;
    struct ahl_err err;
    ahl_err_clear(&err);
    if (ahl_jwks_parse(text, size, &keys, &err) == 0) {
        if (!keys || ahl_jwks_count(keys) == 0 || ahl_jwks_count(keys) > AHL_OIDC_MAX_KEYS)
            abort();
    } else if (keys || !err.msg[0]) {
        abort();
    }
    ahl_jwks_free(keys);
    free(text);
    return 0;
}
