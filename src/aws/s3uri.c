/* s3://bucket/prefix URIs, S3's bucket naming rules and key lengths (declared in s3.h). */
#include <string.h>

#include "aws/s3.h"
#include "base/text.h"
#include "base/banned.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c);
}

/* Whether s looks like a dotted IPv4 address ("192.168.5.4"), which S3 forbids as a bucket. */
static int looks_like_ipv4(const char *s)
{
    int groups = 0;
    while (*s) {
        int digits = 0;
        while (is_digit(*s))
            s++, digits++;
        if (digits == 0 || digits > 3)
            return 0;
        groups++;
        if (*s == '.')
            s++;
        else if (*s)
            return 0;
    }
    return groups == 4;
}

int ahl_s3_bucket_check(const char *b, struct ahl_err *err)
{
    size_t n = strlen(b);
    const char *why = NULL;
    if (n < 3 || n > AHL_S3_MAX_BUCKET)
        why = "must be 3 to 63 characters long";
    else if (!is_lower_alnum(b[0]) || !is_lower_alnum(b[n - 1]))
        why = "must begin and end with a lower-case letter or a digit";
    else if (strstr(b, ".."))
        why = "must not contain two adjacent periods";
    else if (looks_like_ipv4(b))
        why = "must not be formatted as an IP address";
    else if (strncmp(b, "xn--", 4) == 0 || (n > 8 && strcmp(b + n - 8, "-s3alias") == 0) ||
             (n > 7 && strcmp(b + n - 7, "--ol-s3") == 0))
        why = "uses a prefix or suffix S3 reserves";
    for (size_t i = 0; !why && i < n; i++) {
        if (!is_lower_alnum(b[i]) && b[i] != '.' && b[i] != '-')
            why = "may hold only lower-case letters, digits, '.' and '-'";
    }
    if (why)
        return ahl_fail(err, AHL_EPARSE, "bucket name '%.80s' %s", b, why);
    return 0;
}

int ahl_s3_uri_parse(const char *uri, struct ahl_s3_uri *out, struct ahl_err *err)
{
    out->bucket[0] = out->prefix[0] = '\0';
    size_t n = strlen(uri);
    if (n > AHL_S3_MAX_KEY)
        return ahl_fail(err, AHL_EPARSE, "S3 URI is %zu characters long; at most 1024 are allowed",
                        n);
    if (strncmp(uri, "s3://", 5) != 0)
        return ahl_fail(err, AHL_EPARSE, "'%.100s' is not an S3 URI: it must start with s3://",
                        uri);
    const char *b = uri + 5;
    const char *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (blen > AHL_S3_MAX_BUCKET)
        return ahl_fail(err, AHL_EPARSE,
                        "S3 URI '%.100s': bucket name must be 3 to 63 characters long", uri);
    memcpy(out->bucket, b, blen);
    out->bucket[blen] = '\0';
    struct ahl_err local;
    if (ahl_s3_bucket_check(out->bucket, &local) < 0)
        return ahl_fail(err, AHL_EPARSE, "S3 URI '%.100s': %s", uri, local.msg);
    const char *prefix = slash ? slash + 1 : "";
    size_t plen = strlen(prefix);
    if (!ahl_utf8_valid(prefix, plen))
        return ahl_fail(err, AHL_EPARSE, "S3 URI '%.100s': the key prefix is not valid UTF-8", uri);
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (c < 0x20 || c == 0x7f)
            return ahl_fail(err, AHL_EPARSE,
                            "S3 URI '%.100s': the key prefix holds a control character (0x%02x) "
                            "at byte %zu",
                            uri, c, i);
    }
    memcpy(out->prefix, prefix, plen + 1);
    return 0;
}

int ahl_s3_location_check(const char *bucket, const char *key, struct ahl_err *err)
{
    int rc = ahl_s3_bucket_check(bucket, err);
    if (rc < 0)
        return rc;
    if (key && (!key[0] || strlen(key) > AHL_S3_MAX_KEY))
        return ahl_fail(err, AHL_EINVAL, "an object key must be 1 to 1024 bytes long");
    return 0;
}
