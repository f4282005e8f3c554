// module: oidc
/* Fuzzes JWT verification (ahl_jwt_verify) against a fixed key set of one RSA and one EC P-256
 * key (kids "r1" and "e1", made when the target starts). The first byte chooses what the rest is:
 *   even: a token as a client sends it, verified as it is (the parts, base64url, the header's
 *         JSON, kid and alg choice, signature lengths and encodings);
 *   odd:  header JSON, a newline, payload JSON: the target encodes and signs them (with the EC
 *         key, or the RSA key when the byte is 3 mod 4) so that the claims checks behind the
 *         signature are reached with any claims.
 * The clock is fixed (1800000000). Nothing may crash or leak; a refusal carries
 * AHL_OIDC_FAIL_TOKEN and a message; an acceptance has a known access level. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/oidc.h"
#include "../unit/oidc_fixture.h"

static EVP_PKEY *rsa_key, *ec_key;
static struct ahl_jwks *keys;

static void init(void)
{
    rsa_key = fx_keygen(2048);
    ec_key = fx_keygen(0);
    struct ahl_buf m;
    ahl_buf_init(&m, AHL_BUF_UNLIMITED);
    FX_CHECK(ahl_buf_adds(&m, "{\"keys\":[") == 0);
    fx_jwk(rsa_key, "r1", NULL, &m);
    FX_CHECK(ahl_buf_addc(&m, ',') == 0);
    fx_jwk(ec_key, "e1", NULL, &m);
    FX_CHECK(ahl_buf_adds(&m, "]}") == 0);
    FX_CHECK(ahl_jwks_parse(m.data, m.len, &keys, NULL) == 0);
    ahl_buf_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!keys)
        init();
    if (size < 1)
        return 0;
    struct ahl_buf token;
    ahl_buf_init(&token, AHL_BUF_UNLIMITED);
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        /* header \n payload, as C strings (a NUL inside ends a part early) */
        char *text = malloc(n + 1);
        if (!text)
            return 0;
        memcpy(text, rest, n);
        text[n] = '\0';
        char *nl = strchr(text, '\n');
        if (nl)
            *nl = '\0';
        fx_token((data[0] & 3) == 3 ? rsa_key : ec_key, FX_SIGN_KEY, text, nl ? nl + 1 : "",
                 &token);
        free(text);
    } else if (ahl_buf_add(&token, rest, n) < 0) {
        return 0;
    }
    /* Exactly the token's bytes: AddressSanitizer sees a read past its end. */
    char *exact = malloc(token.len ? token.len : 1);
    if (!exact)
        abort();
    memcpy(exact, token.data, token.len);
    struct ahl_jwt_policy pol = {
        .issuer = "https://idp.example.test", .audience = "ahilite", .now_s = 1800000000};
    struct ahl_oidc_claims c;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_jwt_verify(keys, exact, token.len, &pol, &c, &err);
    if (rc == 0 ? c.access > AHL_OIDC_ACCESS_WRITE
                : rc == AHL_EAUTH && (err.detail != AHL_OIDC_FAIL_TOKEN || !err.msg[0]))
        abort();
    free(exact);
    ahl_buf_release(&token);
    return 0;
}
