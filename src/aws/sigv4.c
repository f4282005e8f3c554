/* AWS Signature Version 4: canonical forms, the Authorization and pre-signed parsers, request
 * verification with a signing-key cache, and the signer the S3 client uses. See sigv4.h for the
 * rules and why they are what they are. */
#include "aws/sigv4.h"
#include "aws/aws_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/text.h"
#include "base/banned.h"

#define SIGNATURE_MISMATCH                                                                       \
    "The request signature we calculated does not match the signature you provided. Check your " \
    "AWS Secret Access Key and signing method. Consult the service documentation for details."

/* The RFC 3986 unreserved set: the bytes that are never percent-encoded. */
static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int ahl_sigv4_uri_encode(const char *s, size_t n, int keep_slash, struct ahl_buf *out)
{
    static const char hexd[] = "0123456789ABCDEF";
    /* Worst case every byte triples; reserving once keeps the loop free of error checks. */
    if (n > AHL_SIGV4_MAX_CANONICAL)
        return AHL_ETOOBIG;
    int rc = ahl_buf_reserve(out, 3 * n);
    if (rc < 0)
        return rc;
    char *w = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hexd[c >> 4];
            *w++ = hexd[c & 15];
        }
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int ahl_sigv4_canonical_uri(const char *path, size_t n, enum ahl_sigv4_uri_mode mode,
                            struct ahl_buf *out)
{
    if (n == 0)
        return ahl_buf_addc(out, '/');
    if (mode == AHL_SIGV4_URI_S3)
        return ahl_buf_add(out, path, n);

    /* Normalise as the SDKs do (empty and "." segments dropped, ".." pops one), encoding each kept
     * segment straight into out. An encoded segment holds no '/', so popping one is cutting out
     * back to the last '/' written after base. */
    size_t base = out->len;
    int rc = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && path[i] == '.')) {
            /* dropped */
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            size_t k = out->len;
            while (k > base && out->data[k - 1] != '/')
                k--;
            ahl_buf_truncate(out, k > base ? k - 1 : base);
        } else {
            if ((rc = ahl_buf_addc(out, '/')) < 0 ||
                (rc = ahl_sigv4_uri_encode(path + i, len, 0, out)) < 0)
                return rc;
        }
        i = j + 1;
    }
    int kept = out->len > base;
    if (path[0] != '/' && kept) {
        /* A relative path (never seen on the wire) keeps no leading '/'. */
        memmove(out->data + base, out->data + base + 1, out->len - base - 1);
        ahl_buf_truncate(out, out->len - 1);
    }
    if (!kept && path[0] == '/')
        return ahl_buf_addc(out, '/');
    if (kept && path[n - 1] == '/')
        return ahl_buf_addc(out, '/');
    return 0;
}

/* One query pair, as offsets into a scratch buffer of encoded text. */
struct qpair {
    size_t name_off, name_len, value_off, value_len;
    const char *name, *value; /* set once the scratch buffer stops moving */
};

static int qpair_cmp(const void *pa, const void *pb)
{
    const struct qpair *a = pa, *b = pb;
    size_t m = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, m);
    if (c || a->name_len != b->name_len)
        return c ? c : (a->name_len < b->name_len ? -1 : 1);
    m = a->value_len < b->value_len ? a->value_len : b->value_len;
    c = memcmp(a->value, b->value, m);
    if (c || a->value_len != b->value_len)
        return c ? c : (a->value_len < b->value_len ? -1 : 1);
    return 0;
}

/* Appends the canonical (decoded, then encoded) form of s to scratch. */
static int reencode(const char *s, size_t n, struct ahl_buf *tmp, struct ahl_buf *scratch)
{
    ahl_buf_reset(tmp);
    int rc = ahl_percent_decode(s, n, tmp);
    if (rc < 0)
        return rc;
    return ahl_sigv4_uri_encode(tmp->data, tmp->len, 0, scratch);
}

int ahl_sigv4_canonical_query(const char *query, size_t n, int exclude_signature,
                              struct ahl_buf *out)
{
    if (!query || n == 0)
        return 0;
    struct qpair small[32], *pairs = small;
    size_t npairs = 0, cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += query[i] == '&';
    if (cap > AHL_SIGV4_MAX_QUERY_PARAMS)
        return AHL_ETOOBIG;
    if (cap > sizeof small / sizeof small[0]) {
        pairs = malloc(cap * sizeof *pairs);
        if (!pairs)
            return AHL_ENOMEM;
    }
    struct ahl_buf scratch, tmp;
    ahl_buf_init(&scratch, AHL_SIGV4_MAX_CANONICAL);
    ahl_buf_init(&tmp, AHL_SIGV4_MAX_CANONICAL);
    int rc = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && query[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(query + i, '=', j - i);
            size_t nlen = eq ? (size_t)(eq - (query + i)) : j - i;
            struct qpair *p = &pairs[npairs];
            p->name_off = scratch.len;
            if ((rc = reencode(query + i, nlen, &tmp, &scratch)) < 0)
                goto out;
            p->name_len = scratch.len - p->name_off;
            p->value_off = scratch.len;
            if (eq && (rc = reencode(eq + 1, j - (size_t)(eq + 1 - query), &tmp, &scratch)) < 0)
                goto out;
            p->value_len = scratch.len - p->value_off;
            if (exclude_signature && p->name_len == 15 &&
                memcmp(scratch.data + p->name_off, "X-Amz-Signature", 15) == 0)
                ahl_buf_truncate(&scratch, p->name_off);
            else
                npairs++;
        }
        i = j + 1;
    }
    for (size_t k = 0; k < npairs; k++) {
        pairs[k].name = scratch.data + pairs[k].name_off;
        pairs[k].value = scratch.data + pairs[k].value_off;
    }
    qsort(pairs, npairs, sizeof *pairs, qpair_cmp);
    for (size_t k = 0; k < npairs; k++) {
        if ((k && (rc = ahl_buf_addc(out, '&')) < 0) ||
            (rc = ahl_buf_add(out, pairs[k].name, pairs[k].name_len)) < 0 ||
            (rc = ahl_buf_addc(out, '=')) < 0 ||
            (rc = ahl_buf_add(out, pairs[k].value, pairs[k].value_len)) < 0)
            goto out;
    }
out:
    ahl_buf_release(&scratch);
    ahl_buf_release(&tmp);
    if (pairs != small)
        free(pairs);
    return rc;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Appends value trimmed, with every inner run of white space collapsed to one space. */
static int add_trimmed(const char *v, struct ahl_buf *out)
{
    size_t n = strlen(v);
    int rc = ahl_buf_reserve(out, n);
    if (rc < 0)
        return rc;
    char *w = out->data + out->len;
    int pending_space = 0, any = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_blank(v[i])) {
            pending_space = any;
            continue;
        }
        if (pending_space)
            *w++ = ' ';
        pending_space = 0;
        any = 1;
        *w++ = v[i];
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static int is_header_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
           c == '+' || c == '^' || c == '`' || c == '|' || c == '~';
}

/* ahl_sigv4_canonical_headers, telling err which name was bad or missing. */
static int canonical_headers(const char *signed_headers, ahl_sigv4_header_fn header, void *ctx,
                             struct ahl_buf *out, struct ahl_err *err)
{
    char name[AHL_SIGV4_MAX_SIGNED_HEADERS + 1], prev[AHL_SIGV4_MAX_SIGNED_HEADERS + 1] = "";
    const char *p = signed_headers;
    size_t total = strlen(signed_headers);
    if (total == 0 || total > AHL_SIGV4_MAX_SIGNED_HEADERS)
        return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                               "SignedHeaders must list between 1 and %d bytes of header names",
                               AHL_SIGV4_MAX_SIGNED_HEADERS);
    for (;;) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        for (size_t i = 0; i < len; i++) {
            if (!is_header_name_char(p[i]))
                return ahl_fail_detail(
                    err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                    "SignedHeaders '%s' must hold lower-case header names separated "
                    "by ';'",
                    signed_headers);
        }
        if (len == 0)
            return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                   "SignedHeaders '%s' has an empty header name", signed_headers);
        memcpy(name, p, len);
        name[len] = '\0';
        if (prev[0] && strcmp(prev, name) >= 0)
            return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                   "SignedHeaders '%s' must be sorted and without repeats",
                                   signed_headers);
        int rc;
        if ((rc = ahl_buf_add(out, name, len)) < 0 || (rc = ahl_buf_addc(out, ':')) < 0)
            return rc;
        const char *v;
        size_t nth = 0;
        while ((v = header(ctx, name, nth)) != NULL) {
            if ((nth && (rc = ahl_buf_addc(out, ',')) < 0) || (rc = add_trimmed(v, out)) < 0)
                return rc;
            nth++;
        }
        if (nth == 0)
            return ahl_fail_detail(err, AHL_ENOTFOUND, AHL_SIGV4_FAIL_INVALID,
                                   "SignedHeaders lists '%s' but the request has no such header",
                                   name);
        if ((rc = ahl_buf_addc(out, '\n')) < 0)
            return rc;
        memcpy(prev, name, len + 1);
        if (!semi)
            return 0;
        p = semi + 1;
    }
}

int ahl_sigv4_canonical_headers(const char *signed_headers, ahl_sigv4_header_fn header, void *ctx,
                                struct ahl_buf *out)
{
    return canonical_headers(signed_headers, header, ctx, out, NULL);
}

int ahl_sigv4_canonical_request(const char *method, const char *canonical_uri,
                                const char *canonical_query, const char *canonical_headers,
                                const char *signed_headers, const char *payload_hash,
                                struct ahl_buf *out)
{
    const char *parts[] = {method,         canonical_uri, canonical_query, canonical_headers,
                           signed_headers, payload_hash};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int rc;
        if ((i && (rc = ahl_buf_addc(out, '\n')) < 0) || (rc = ahl_buf_adds(out, parts[i])) < 0)
            return rc;
    }
    return 0;
}

int ahl_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                             const char *canonical_request, size_t canonical_len,
                             struct ahl_buf *out)
{
    char hash[AHL_SHA256_HEX_LEN + 1];
    ahl_sha256_hex(canonical_request, canonical_len, hash);
    return ahl_buf_addf(out, AHL_SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date,
                        amz_date, region, service, hash);
}

void ahl_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                           const char *service, uint8_t key[AHL_SHA256_LEN])
{
    char k0[4 + AHL_SIGV4_MAX_SECRET + 1];
    size_t slen = strnlen(secret, AHL_SIGV4_MAX_SECRET);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen);
    uint8_t k[AHL_SHA256_LEN];
    ahl_hmac_sha256(k0, 4 + slen, date8, strlen(date8), k);
    ahl_hmac_sha256(k, sizeof k, region, strlen(region), k);
    ahl_hmac_sha256(k, sizeof k, service, strlen(service), k);
    ahl_hmac_sha256(k, sizeof k, "aws4_request", 12, key);
    /* The secret's copy on the stack should not outlive the call. */
    volatile char *wipe = k0;
    for (size_t i = 0; i < sizeof k0; i++)
        wipe[i] = 0;
}

void ahl_sigv4_signature(const uint8_t key[AHL_SHA256_LEN], const char *string_to_sign, size_t n,
                         char hex[AHL_SHA256_HEX_LEN + 1])
{
    uint8_t mac[AHL_SHA256_LEN];
    ahl_hmac_sha256(key, AHL_SHA256_LEN, string_to_sign, n, mac);
    ahl_hex_encode(mac, sizeof mac, hex);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
int64_t ahl__days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void ahl_sigv4_format_time(int64_t epoch_s, char out[17])
{
    int64_t z = (epoch_s >= 0 ? epoch_s : epoch_s - 86399) / 86400;
    int64_t secs = epoch_s - z * 86400;
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    if (y < 0 || y > 9999) {
        memcpy(out, "00000000T000000Z", 17);
        return;
    }
    /* Written digit by digit: the ranges are known, and this runs on every signed request. */
    int f[6] = {(int)y,          (int)m, (int)d, (int)(secs / 3600), (int)(secs / 60 % 60),
                (int)(secs % 60)};
    char *w = out;
    for (int i = 0; i < 6; i++) {
        if (i == 0) {
            *w++ = (char)('0' + f[0] / 1000);
            *w++ = (char)('0' + f[0] / 100 % 10);
        }
        if (i == 3)
            *w++ = 'T';
        *w++ = (char)('0' + f[i] / 10 % 10);
        *w++ = (char)('0' + f[i] % 10);
    }
    *w++ = 'Z';
    *w = '\0';
}

static int digits(const char *s, size_t n, int *v)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

int ahl_sigv4_parse_time(const char *s, int64_t *epoch_s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se;
    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z' || digits(s, 4, &y) ||
        digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) || digits(s + 9, 2, &h) ||
        digits(s + 11, 2, &mi) || digits(s + 13, 2, &se))
        return AHL_EPARSE;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 59)
        return AHL_EPARSE;
    *epoch_s = ahl__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

/* Copies s[0..n) into dst (cap bytes with the NUL); -1 when it does not fit. */
static int copy_bounded(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* Splits "key/yyyymmdd/region/service/aws4_request" into auth. The key is everything before the
 * last four parts. */
static int parse_credential(const char *s, size_t n, struct ahl_sigv4_auth *auth,
                            struct ahl_err *err)
{
    const char *slash[4];
    int found = 0;
    for (size_t i = n; i > 0 && found < 4; i--) {
        if (s[i - 1] == '/')
            slash[found++] = s + i - 1; /* slash[0] is the last one */
    }
    if (found < 4 || slash[3] == s)
        goto bad;
    const char *date = slash[3] + 1, *region = slash[2] + 1, *service = slash[1] + 1,
               *term = slash[0] + 1;
    size_t date_len = (size_t)(slash[2] - date), region_len = (size_t)(slash[1] - region),
           service_len = (size_t)(slash[0] - service), term_len = (size_t)(s + n - term);
    int ignored;
    if (date_len != 8 || digits(date, 8, &ignored) || region_len == 0 || service_len == 0)
        goto bad;
    if (term_len != 12 || memcmp(term, "aws4_request", 12) != 0)
        return ahl_fail_detail(
            err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            "not '%.*s'.",
            (int)(term_len > 64 ? 64 : term_len), term);
    if (copy_bounded(auth->access_key, sizeof auth->access_key, s, (size_t)(slash[3] - s)) ||
        copy_bounded(auth->scope_date, sizeof auth->scope_date, date, 8) ||
        copy_bounded(auth->region, sizeof auth->region, region, region_len) ||
        copy_bounded(auth->service, sizeof auth->service, service, service_len))
        goto bad;
    return 0;
bad:
    return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                           "Credential must have exactly 5 slash-delimited elements, e.g. "
                           "keyid/date/region/service/term, got '%.*s'",
                           (int)(n > 200 ? 200 : n), s);
}

/* Checks that s is 64 hex digits and stores it in lower case. */
static int parse_signature(const char *s, size_t n, struct ahl_sigv4_auth *auth,
                           struct ahl_err *err)
{
    uint8_t raw[AHL_SHA256_LEN];
    if (n != AHL_SHA256_HEX_LEN || ahl_hex_decode(s, raw, sizeof raw) < 0)
        goto bad;
    ahl_hex_encode(raw, sizeof raw, auth->signature);
    return 0;
bad:
    return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                           "Signature must be %d hexadecimal digits, got %zu characters",
                           AHL_SHA256_HEX_LEN, n);
}

static void auth_clear(struct ahl_sigv4_auth *auth)
{
    auth->presigned = 0;
    auth->access_key[0] = auth->scope_date[0] = auth->region[0] = auth->service[0] = '\0';
    auth->signed_headers[0] = auth->signature[0] = auth->amz_date[0] = '\0';
    auth->security_token[0] = '\0';
    auth->expires = -1;
}

int ahl_sigv4_parse_authorization(const char *value, struct ahl_sigv4_auth *auth,
                                  struct ahl_err *err)
{
    auth_clear(auth);
    size_t alen = sizeof AHL_SIGV4_ALGORITHM - 1;
    while (is_blank(*value))
        value++;
    if (strncmp(value, AHL_SIGV4_ALGORITHM, alen) != 0 || !is_blank(value[alen])) {
        size_t w = strcspn(value, " \t");
        return ahl_fail_detail(err, AHL_EUNSUPPORTED, AHL_SIGV4_FAIL_INCOMPLETE,
                               "Authorization header uses the unsupported scheme '%.*s'; only "
                               "AWS4-HMAC-SHA256 is accepted",
                               (int)(w > 64 ? 64 : w), value);
    }
    const char *p = value + alen;
    int have_cred = 0, have_sh = 0, have_sig = 0;
    int rc;
    while (*p) {
        while (is_blank(*p) || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ",");
        size_t tl = len;
        while (tl > 0 && is_blank(p[tl - 1]))
            tl--;
        const char *eq = memchr(p, '=', tl);
        if (!eq)
            return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                   "'%.*s' not a valid key=value pair (missing equal-sign) in "
                                   "Authorization header",
                                   (int)(tl > 100 ? 100 : tl), p);
        size_t klen = (size_t)(eq - p), vlen = tl - klen - 1;
        const char *v = eq + 1;
        int *seen = NULL;
        if (klen == 10 && memcmp(p, "Credential", 10) == 0) {
            seen = &have_cred;
            if (!*seen && (rc = parse_credential(v, vlen, auth, err)) < 0)
                return rc;
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0) {
            seen = &have_sh;
            if (!*seen &&
                copy_bounded(auth->signed_headers, sizeof auth->signed_headers, v, vlen) < 0)
                return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                       "SignedHeaders is longer than %d bytes",
                                       AHL_SIGV4_MAX_SIGNED_HEADERS);
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0) {
            seen = &have_sig;
            if (!*seen && (rc = parse_signature(v, vlen, auth, err)) < 0)
                return rc;
        }
        /* Unknown keys are ignored, as AWS does. */
        if (seen) {
            if (*seen)
                return ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                       "Authorization header repeats the '%.*s' parameter",
                                       (int)klen, p);
            *seen = 1;
        }
        p += len;
    }
    if (!have_cred || !have_sh || !have_sig) {
        return ahl_fail_detail(
            err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE, "%s%s%s",
            have_cred ? "" : "Authorization header requires 'Credential' parameter. ",
            have_sig ? "" : "Authorization header requires 'Signature' parameter. ",
            have_sh ? "" : "Authorization header requires 'SignedHeaders' parameter. ");
    }
    return 0;
}

int ahl_sigv4_parse_presigned(const char *query, size_t n, struct ahl_sigv4_auth *auth,
                              struct ahl_err *err)
{
    auth_clear(auth);
    auth->presigned = 1;
    enum { ALG, CRED, DATE, EXPIRES, SH, SIG, TOKEN, NPARAM };
    static const char *const names[NPARAM] = {
        "X-Amz-Algorithm",     "X-Amz-Credential", "X-Amz-Date",          "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature",  "X-Amz-Security-Token"};
    int seen[NPARAM] = {0};
    struct ahl_buf name, val;
    ahl_buf_init(&name, 256);
    ahl_buf_init(&val, AHL_SIGV4_MAX_TOKEN);
    int rc = 0;
    size_t i = 0;
    while (query && i < n) {
        size_t j = i;
        while (j < n && query[j] != '&')
            j++;
        const char *eq = memchr(query + i, '=', j - i);
        size_t nlen = eq ? (size_t)(eq - (query + i)) : j - i;
        /* Only names that start with X-Amz- can matter; skip the rest cheaply. */
        if (nlen >= 6 && (query[i] == 'X' || query[i] == 'x')) {
            ahl_buf_reset(&name);
            if (ahl_percent_decode(query + i, nlen, &name) < 0) {
                rc = ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                     "query parameter name '%.*s' has a bad %%-escape",
                                     (int)(nlen > 64 ? 64 : nlen), query + i);
                goto out;
            }
            int k = 0;
            while (k < NPARAM && strcmp(name.data, names[k]) != 0)
                k++;
            if (k < NPARAM) {
                ahl_buf_reset(&val);
                size_t vlen = eq ? j - (size_t)(eq + 1 - query) : 0;
                if (seen[k]) {
                    rc = ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                         "query parameter %s appears more than once", names[k]);
                    goto out;
                }
                seen[k] = 1;
                if ((rc = ahl_percent_decode(eq ? eq + 1 : "", vlen, &val)) < 0) {
                    rc = ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                         "query parameter %s is %s", names[k],
                                         rc == AHL_EPARSE ? "not validly %-encoded" : "too long");
                    goto out;
                }
                const char *v = val.data;
                size_t vl = val.len;
                int bad = 0;
                switch (k) {
                case ALG:
                    if (strcmp(v, AHL_SIGV4_ALGORITHM) != 0) {
                        rc = ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                             "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
                        goto out;
                    }
                    break;
                case CRED:
                    if ((rc = parse_credential(v, vl, auth, err)) < 0)
                        goto out;
                    break;
                case DATE:
                    bad = copy_bounded(auth->amz_date, sizeof auth->amz_date, v, vl);
                    break;
                case EXPIRES: {
                    int64_t e = 0;
                    bad = vl == 0 || vl > 7;
                    for (size_t q = 0; !bad && q < vl; q++) {
                        bad = v[q] < '0' || v[q] > '9';
                        e = e * 10 + (v[q] - '0');
                    }
                    if (bad || e < 1 || e > AHL_SIGV4_MAX_EXPIRES) {
                        rc = ahl_fail_detail(
                            err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                            "X-Amz-Expires must be a number of seconds from 1 to %d",
                            AHL_SIGV4_MAX_EXPIRES);
                        goto out;
                    }
                    auth->expires = e;
                    break;
                }
                case SH:
                    bad = copy_bounded(auth->signed_headers, sizeof auth->signed_headers, v, vl);
                    break;
                case SIG:
                    if ((rc = parse_signature(v, vl, auth, err)) < 0)
                        goto out;
                    break;
                case TOKEN:
                    bad = copy_bounded(auth->security_token, sizeof auth->security_token, v, vl);
                    break;
                }
                if (bad) {
                    rc = ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                         "query parameter %s is too long", names[k]);
                    goto out;
                }
            }
        }
        i = j + 1;
    }
    if (!seen[ALG]) {
        rc = AHL_ENOTFOUND;
        goto out;
    }
    for (int k = CRED; k <= SIG; k++) {
        if (!seen[k] && k != EXPIRES) {
            rc = ahl_fail_detail(err, AHL_EPARSE, AHL_SIGV4_FAIL_INCOMPLETE,
                                 "AWS query-string parameters must include '%s'. Re-examine the "
                                 "query-string parameters.",
                                 names[k]);
            goto out;
        }
    }
out:
    ahl_buf_release(&name);
    ahl_buf_release(&val);
    return rc;
}

int ahl_sigv4_verifier_init(struct ahl_sigv4_verifier *v, const struct ahl_sigv4_config *cfg)
{
    if (!cfg->service || !cfg->service[0] || !cfg->secret)
        return AHL_EINVAL;
    memset(v, 0, sizeof *v);
    v->cfg = *cfg;
    if (v->cfg.max_skew_s <= 0)
        v->cfg.max_skew_s = 900;
    if (pthread_mutex_init(&v->lock, NULL) != 0)
        return AHL_ENOMEM;
    return 0;
}

void ahl_sigv4_verifier_release(struct ahl_sigv4_verifier *v)
{
    pthread_mutex_destroy(&v->lock);
    /* The cached keys are secrets; do not leave them in freed memory. */
    volatile uint8_t *wipe = (volatile uint8_t *)v->cache;
    for (size_t i = 0; i < sizeof v->cache; i++)
        wipe[i] = 0;
}

/* kSigning for (key, date, region) from the cache, deriving and storing it on a miss. Deriving
 * costs four HMACs; a server sees the same few keys all day, so almost every request hits. */
static void cached_signing_key(struct ahl_sigv4_verifier *v, const struct ahl_sigv4_auth *auth,
                               const char *secret, uint8_t key[AHL_SHA256_LEN])
{
    pthread_mutex_lock(&v->lock);
    struct ahl__sigv4_cached_key *victim = &v->cache[0];
    for (size_t i = 0; i < AHL_SIGV4_KEY_CACHE; i++) {
        struct ahl__sigv4_cached_key *c = &v->cache[i];
        if (c->used && strcmp(c->access_key, auth->access_key) == 0 &&
            strcmp(c->date8, auth->scope_date) == 0 && strcmp(c->region, auth->region) == 0 &&
            strcmp(c->secret, secret) == 0) {
            c->used = ++v->tick;
            memcpy(key, c->key, AHL_SHA256_LEN);
            pthread_mutex_unlock(&v->lock);
            return;
        }
        if (c->used < victim->used)
            victim = c;
    }
    pthread_mutex_unlock(&v->lock);
    /* Derive outside the lock; two threads missing at once both derive the same key, harmlessly. */
    ahl_sigv4_signing_key(secret, auth->scope_date, auth->region, v->cfg.service, key);
    pthread_mutex_lock(&v->lock);
    /* A secret the entry cannot hold whole is not cached (a cut one could match another). */
    if (ahl_str_copy(victim->secret, sizeof victim->secret, secret) < 0) {
        memset(victim, 0, sizeof *victim);
        pthread_mutex_unlock(&v->lock);
        return;
    }
    memcpy(victim->access_key, auth->access_key, sizeof victim->access_key);
    memcpy(victim->date8, auth->scope_date, sizeof victim->date8);
    memcpy(victim->region, auth->region, sizeof victim->region);
    memcpy(victim->key, key, AHL_SHA256_LEN);
    victim->used = ++v->tick;
    pthread_mutex_unlock(&v->lock);
}

static int is_hex64(const char *s)
{
    uint8_t raw[AHL_SHA256_LEN];
    return strnlen(s, AHL_SHA256_HEX_LEN + 1) == AHL_SHA256_HEX_LEN &&
           ahl_hex_decode(s, raw, sizeof raw) == 0;
}

/* Decides the payload hash that goes into the canonical request (see sigv4.h). */
static int payload_hash(const struct ahl_sigv4_verifier *v, const struct ahl_sigv4_request *rq,
                        int presigned, char out[AHL_SHA256_HEX_LEN + 40],
                        struct ahl_sigv4_result *res, struct ahl_err *err)
{
    const char *x = rq->header(rq->header_ctx, "x-amz-content-sha256", 0);
    if (!x) {
        /* botocore and the JS SDK pre-sign with the body's hash, except for S3. */
        const char *h = presigned && v->cfg.uri_mode == AHL_SIGV4_URI_S3
                            ? AHL_SIGV4_UNSIGNED_PAYLOAD
                            : rq->body_sha256_hex;
        if (!h)
            return ahl_fail(err, AHL_EINVAL,
                            "the body must be hashed before a request without "
                            "x-amz-content-sha256 can be verified");
        if (ahl_str_copy(out, AHL_SHA256_HEX_LEN + 40, h) < 0)
            return ahl_fail(err, AHL_EINVAL, "the body hash given is not a SHA-256 hex digest");
        return 0;
    }
    if (strcmp(x, AHL_SIGV4_UNSIGNED_PAYLOAD) == 0) {
        if (!v->cfg.allow_unsigned_payload && !presigned)
            return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                                   "x-amz-content-sha256: UNSIGNED-PAYLOAD is not accepted by this "
                                   "service; sign the payload");
    } else if (strcmp(x, AHL_SIGV4_STREAMING_PAYLOAD) == 0) {
        if (!v->cfg.allow_streaming_payload && !rq->allow_streaming)
            return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                                   "x-amz-content-sha256: " AHL_SIGV4_STREAMING_PAYLOAD
                                   " is not accepted by this service; sign the payload");
    } else if (is_hex64(x)) {
        if (rq->body_sha256_hex) {
            if (strcasecmp(x, rq->body_sha256_hex) != 0)
                return ahl_fail_detail(
                    err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                    "The provided 'x-amz-content-sha256' header does not match what "
                    "was computed.");
        } else {
            memcpy(res->body_hash_to_check, x, AHL_SHA256_HEX_LEN + 1);
        }
    } else {
        return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                               "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                               "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.");
    }
    /* x is one of the values accepted above, all shorter than out. */
    if (ahl_str_copy(out, AHL_SHA256_HEX_LEN + 40, x) < 0)
        return ahl_fail(err, AHL_EINTERNAL, "x-amz-content-sha256 does not fit");
    return 0;
}

/* Checks the request time against now (and X-Amz-Expires for pre-signed requests). */
static int check_time(const struct ahl_sigv4_verifier *v, const struct ahl_sigv4_auth *auth,
                      const char *amz_date, int64_t now_s, struct ahl_err *err)
{
    int64_t t;
    if (ahl_sigv4_parse_time(amz_date, &t) < 0)
        return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                               "Date must be in ISO-8601 'basic format'. Got '%.32s'. See "
                               "http://en.wikipedia.org/wiki/ISO_8601",
                               amz_date);
    if (memcmp(auth->scope_date, amz_date, 8) != 0)
        return ahl_fail_detail(
            err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
            "of date from HTTP: '%s' != '%.8s', from '%s'.",
            auth->scope_date, amz_date, amz_date);
    int64_t skew = v->cfg.max_skew_s;
    char a[17], b[17], c[17];
    if (t > now_s + skew) {
        ahl_sigv4_format_time(now_s + skew, b);
        ahl_sigv4_format_time(now_s, c);
        return ahl_fail_detail(
            err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
            "Signature not yet current: %s is still later than %s (%s + %lld min.)", amz_date, b, c,
            (long long)(skew / 60));
    }
    if (auth->presigned && auth->expires >= 0) {
        if (now_s > t + auth->expires) {
            ahl_sigv4_format_time(t + auth->expires, a);
            ahl_sigv4_format_time(now_s, c);
            return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                                   "Signature expired: %s is now earlier than %s (X-Amz-Date %s + "
                                   "X-Amz-Expires %lld sec.)",
                                   a, c, amz_date, (long long)auth->expires);
        }
        return 0;
    }
    if (t < now_s - skew) {
        ahl_sigv4_format_time(now_s - skew, b);
        ahl_sigv4_format_time(now_s, c);
        return ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                               "Signature expired: %s is now earlier than %s (%s - %lld min.)",
                               amz_date, b, c, (long long)(skew / 60));
    }
    return 0;
}

/* Whether the ';'-separated list holds name. */
static int list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && (p[n] == ';' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

/* Authentication failures are AHL_EAUTH whatever the parser said, so callers test one code. */
static int as_auth_error(int rc)
{
    return rc == AHL_EPARSE || rc == AHL_EUNSUPPORTED || rc == AHL_ENOTFOUND ? AHL_EAUTH : rc;
}

int ahl_sigv4_verify(struct ahl_sigv4_verifier *v, const struct ahl_sigv4_request *rq,
                     int64_t now_s, struct ahl_sigv4_result *res, struct ahl_err *err,
                     struct ahl_buf *debug_canonical)
{
    struct ahl_sigv4_auth auth;
    struct ahl_buf cr, sts;
    ahl_buf_init(&cr, AHL_SIGV4_MAX_CANONICAL);
    ahl_buf_init(&sts, AHL_SIGV4_MAX_CANONICAL);
    char secret[AHL_SIGV4_MAX_SECRET + 1] = "";
    char hash[AHL_SHA256_HEX_LEN + 40];
    int rc;
    res->access_key[0] = '\0';
    res->presigned = 0;
    res->body_hash_to_check[0] = '\0';
    res->streaming = 0;

    const char *authz = rq->header(rq->header_ctx, "authorization", 0);
    const char *amz_date, *token;
    if (authz) {
        if ((rc = ahl_sigv4_parse_authorization(authz, &auth, err)) < 0)
            goto out;
        /* Header values live only until the next lookup: copy what is needed later. */
        const char *d = rq->header(rq->header_ctx, "x-amz-date", 0);
        if (!d) {
            rc = ahl_fail_detail(
                err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                "Authorization header requires existence of a 'X-Amz-Date' header.");
            goto out;
        }
        if (copy_bounded(auth.amz_date, sizeof auth.amz_date, d, strlen(d)) < 0) {
            rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                                 "Date must be in ISO-8601 'basic format'. Got '%.32s'. See "
                                 "http://en.wikipedia.org/wiki/ISO_8601",
                                 d);
            goto out;
        }
        const char *t = rq->header(rq->header_ctx, "x-amz-security-token", 0);
        if (t && copy_bounded(auth.security_token, sizeof auth.security_token, t, strlen(t)) < 0) {
            rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                                 "x-amz-security-token is longer than %d bytes",
                                 AHL_SIGV4_MAX_TOKEN);
            goto out;
        }
        amz_date = auth.amz_date;
        token = t ? auth.security_token : NULL;
    } else {
        rc = ahl_sigv4_parse_presigned(rq->query, rq->query ? rq->query_len : 0, &auth, err);
        if (rc == AHL_ENOTFOUND) {
            rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_MISSING,
                                 "Request is missing Authentication Token");
            goto out;
        }
        if (rc < 0)
            goto out;
        amz_date = auth.amz_date;
        token = auth.security_token[0] ? auth.security_token : NULL;
    }
    res->presigned = auth.presigned;

    if (strcmp(auth.service, v->cfg.service) != 0) {
        rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                             "Credential should be scoped to correct service: '%s'. ",
                             v->cfg.service);
        goto out;
    }
    if (v->cfg.region && strcmp(auth.region, v->cfg.region) != 0) {
        rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
                             "Credential should be scoped to a valid region, not '%s'. ",
                             auth.region);
        goto out;
    }
    if ((rc = check_time(v, &auth, amz_date, now_s, err)) < 0)
        goto out;

    rc = v->cfg.secret(v->cfg.secret_ctx, auth.access_key, token, secret, sizeof secret);
    if (rc == AHL_ENOTFOUND || rc == AHL_EDENIED) {
        rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_UNRECOGNIZED,
                             "The security token included in the request is invalid.");
        goto out;
    }
    if (rc < 0) {
        rc = ahl_fail(err, rc, "credential lookup failed: %s", ahl_strerror(rc));
        goto out;
    }
    memcpy(res->access_key, auth.access_key, sizeof res->access_key);
    if (rq->credentials_only) {
        rc = 0;
        goto out;
    }

    /* The canonical request, piece by piece into one buffer. */
    if ((rc = payload_hash(v, rq, auth.presigned, hash, res, err)) < 0)
        goto out;
    if ((rc = ahl_buf_adds(&cr, rq->method)) < 0 || (rc = ahl_buf_addc(&cr, '\n')) < 0 ||
        (rc = ahl_sigv4_canonical_uri(rq->path, rq->path_len, v->cfg.uri_mode, &cr)) < 0 ||
        (rc = ahl_buf_addc(&cr, '\n')) < 0)
        goto toobig;
    rc = ahl_sigv4_canonical_query(rq->query, rq->query ? rq->query_len : 0, auth.presigned, &cr);
    if (rc == AHL_EPARSE) {
        rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                             "the query string has a bad %%-escape");
        goto out;
    }
    if (rc < 0 || (rc = ahl_buf_addc(&cr, '\n')) < 0)
        goto toobig;
    rc = canonical_headers(auth.signed_headers, rq->header, rq->header_ctx, &cr, err);
    if (rc == AHL_EPARSE || rc == AHL_ENOTFOUND)
        goto out;
    if (rc < 0)
        goto toobig;
    if (!list_has(auth.signed_headers, "host")) {
        rc = ahl_fail_detail(
            err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
        goto out;
    }
    if ((rc = ahl_buf_addf(&cr, "\n%s\n%s", auth.signed_headers, hash)) < 0)
        goto toobig;
    if (debug_canonical && (rc = ahl_buf_add(debug_canonical, cr.data, cr.len)) < 0)
        goto out;

    if ((rc = ahl_sigv4_string_to_sign(amz_date, auth.region, auth.service, cr.data, cr.len,
                                       &sts)) < 0)
        goto out;
    uint8_t key[AHL_SHA256_LEN];
    char sig[AHL_SHA256_HEX_LEN + 1];
    cached_signing_key(v, &auth, secret, key);
    ahl_sigv4_signature(key, sts.data, sts.len, sig);
    if (ahl_memeq_ct(sig, auth.signature, AHL_SHA256_HEX_LEN) != 0) {
        rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INVALID, SIGNATURE_MISMATCH);
        goto out;
    }
    if (strcmp(hash, AHL_SIGV4_STREAMING_PAYLOAD) == 0) {
        res->streaming = 1;
        memcpy(res->signing_key, key, sizeof key);
        memcpy(res->amz_date, amz_date, sizeof res->amz_date);
        snprintf(res->scope, sizeof res->scope, "%s/%s/%s/aws4_request", auth.scope_date,
                 auth.region, auth.service);
        memcpy(res->seed_signature, sig, sizeof sig);
    }
    rc = 0;
    goto out;
toobig:
    if (rc == AHL_ETOOBIG)
        rc = ahl_fail_detail(err, AHL_EAUTH, AHL_SIGV4_FAIL_INCOMPLETE,
                             "the request's path, query and signed headers exceed %d bytes",
                             AHL_SIGV4_MAX_CANONICAL);
    else
        rc = ahl_fail(err, rc, "%s", ahl_strerror(rc));
out : {
    volatile char *wipe = secret;
    for (size_t i = 0; i < sizeof secret; i++)
        wipe[i] = 0;
}
    ahl_buf_release(&cr);
    ahl_buf_release(&sts);
    if (rc < 0) {
        res->access_key[0] = '\0';
        res->streaming = 0;
        rc = as_auth_error(rc);
        if (err)
            err->code = rc; /* the record says what the caller is told */
    }
    return rc;
}

/* The header callback over the signer's own sorted list. */
struct sign_headers {
    const struct ahl_sigv4_header *h;
    size_t n;
};

static const char *sign_header_lookup(void *ctx, const char *name, size_t nth)
{
    const struct sign_headers *sh = ctx;
    for (size_t i = 0; i < sh->n; i++) {
        if (strcmp(sh->h[i].name, name) == 0) {
            if (nth == 0)
                return sh->h[i].value;
            nth--;
        }
    }
    return NULL;
}

static int header_cmp(const void *pa, const void *pb)
{
    const struct ahl_sigv4_header *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

int ahl_sigv4_sign(const struct ahl_sigv4_sign_input *in, const struct ahl_sigv4_credentials *cred,
                   struct ahl_sigv4_signed *out)
{
    struct ahl_sigv4_header all[32 + 3];
    struct ahl_buf cr, sts, signed_list;
    ahl_buf_init(&out->authorization, AHL_SIGV4_MAX_CANONICAL);
    ahl_buf_init(&cr, AHL_SIGV4_MAX_CANONICAL);
    ahl_buf_init(&sts, AHL_SIGV4_MAX_CANONICAL);
    ahl_buf_init(&signed_list, AHL_SIGV4_MAX_SIGNED_HEADERS);
    int rc = AHL_EINVAL;
    if (in->n_headers > 32 || !cred->access_key || !cred->secret_key ||
        strlen(cred->secret_key) > AHL_SIGV4_MAX_SECRET)
        goto out;

    ahl_sigv4_format_time(in->now_s, out->amz_date);
    if (ahl_str_copy(out->content_sha256, sizeof out->content_sha256, in->payload_hash) < 0)
        goto out;
    size_t n = 0;
    int have_host = 0;
    for (size_t i = 0; i < in->n_headers; i++) {
        all[n++] = in->headers[i];
        have_host |= strcmp(in->headers[i].name, "host") == 0;
    }
    if (!have_host)
        goto out;
    all[n++] = (struct ahl_sigv4_header){"x-amz-date", out->amz_date};
    all[n++] = (struct ahl_sigv4_header){"x-amz-content-sha256", out->content_sha256};
    if (cred->session_token && cred->session_token[0])
        all[n++] = (struct ahl_sigv4_header){"x-amz-security-token", cred->session_token};
    qsort(all, n, sizeof all[0], header_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(all[i - 1].name, all[i].name) == 0) {
            rc = AHL_EINVAL; /* the caller passed a header the signer adds, or a repeat */
            goto out;
        }
        if ((i && (rc = ahl_buf_addc(&signed_list, ';')) < 0) ||
            (rc = ahl_buf_adds(&signed_list, all[i].name)) < 0)
            goto out;
    }
    struct sign_headers sh = {all, n};
    if ((rc = ahl_buf_adds(&cr, in->method)) < 0 || (rc = ahl_buf_addc(&cr, '\n')) < 0 ||
        (rc = ahl_sigv4_canonical_uri(in->path, strlen(in->path), in->uri_mode, &cr)) < 0 ||
        (rc = ahl_buf_addc(&cr, '\n')) < 0 ||
        (rc = ahl_sigv4_canonical_query(in->query, in->query ? strlen(in->query) : 0, 0, &cr)) <
            0 ||
        (rc = ahl_buf_addc(&cr, '\n')) < 0 ||
        (rc = ahl_sigv4_canonical_headers(signed_list.data, sign_header_lookup, &sh, &cr)) < 0 ||
        (rc = ahl_buf_addf(&cr, "\n%s\n%s", signed_list.data, in->payload_hash)) < 0)
        goto out;
    if ((rc = ahl_sigv4_string_to_sign(out->amz_date, in->region, in->service, cr.data, cr.len,
                                       &sts)) < 0)
        goto out;
    uint8_t key[AHL_SHA256_LEN];
    char sig[AHL_SHA256_HEX_LEN + 1];
    char date8[9];
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';
    if (in->signing_key)
        memcpy(key, in->signing_key, sizeof key);
    else
        ahl_sigv4_signing_key(cred->secret_key, date8, in->region, in->service, key);
    ahl_sigv4_signature(key, sts.data, sts.len, sig);
    rc = ahl_buf_addf(&out->authorization,
                      AHL_SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
                                          "SignedHeaders=%s, Signature=%s",
                      cred->access_key, out->amz_date, in->region, in->service, signed_list.data,
                      sig);
out:
    ahl_buf_release(&cr);
    ahl_buf_release(&sts);
    ahl_buf_release(&signed_list);
    if (rc < 0)
        ahl_buf_release(&out->authorization);
    return rc;
}
