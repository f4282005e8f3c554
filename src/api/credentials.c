/* The key pairs the server accepts: AWS shared-credentials files, environment pairs, and a pair
 * generated on first start.
 *
 * The file format is the one the AWS CLI writes (~/.aws/credentials): "[profile]" section lines,
 * "key = value" lines, '#' and ';' comments. Only aws_access_key_id and aws_secret_access_key
 * matter; every profile with both may sign requests.
 */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/log.h"
#include "base/text.h"
#include "base/banned.h"

int ahl_api_credentials_add(struct ahl_api_credentials *creds, const char *access_key,
                            const char *secret_key)
{
    /* One access key, one secret: a second definition would leave which secret signs ambiguous,
     * and is most likely a copy-paste mistake. */
    for (size_t i = 0; i < creds->n; i++)
        if (!strcmp(creds->keys[i].access_key, access_key))
            return AHL_ECONFLICT;
    if (creds->n == AHL_API_MAX_CREDENTIALS)
        return AHL_ETOOBIG;
    struct ahl_api_credential *c = &creds->keys[creds->n];
    size_t a = strlen(access_key), s = strlen(secret_key);
    if (a == 0 || s == 0 || a >= sizeof c->access_key || s >= sizeof c->secret_key)
        return AHL_ETOOBIG;
    memcpy(c->access_key, access_key, a + 1);
    memcpy(c->secret_key, secret_key, s + 1);
    creds->n++;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Adds the pair of the profile just finished, if it has one. */
static int finish_profile(struct ahl_api_credentials *creds, const char *profile, const char *akid,
                          const char *secret, const char *path, struct ahl_err *err)
{
    if (!*akid && !*secret)
        return 0;
    if (!*akid || !*secret)
        return ahl_fail(err, AHL_EPARSE, "%s: profile [%s] has %s but not %s", path, profile,
                        *akid ? "aws_access_key_id" : "aws_secret_access_key",
                        *akid ? "aws_secret_access_key" : "aws_access_key_id");
    int rc = ahl_api_credentials_add(creds, akid, secret);
    if (rc == AHL_ECONFLICT)
        return ahl_fail(err, rc,
                        "%s: profile [%s]: access key %s is defined a second time; each access key "
                        "may appear in one profile only",
                        path, profile, akid);
    if (rc < 0)
        return ahl_fail(err, AHL_ETOOBIG, "%s: profile [%s]: too many keys or key too long", path,
                        profile);
    return 0;
}

int ahl_api_credentials_load(const char *path, struct ahl_api_credentials *creds,
                             struct ahl_err *err)
{
    FILE *f = fopen(path, "r");
    char line[1024], profile[128] = "", akid[129] = "", secret[257] = "";
    size_t before = creds->n;
    int rc = 0, lineno = 0;

    if (!f)
        return ahl_fail(err, AHL_EIO, "cannot open credentials file %s: %s", path, strerror(errno));
    /* Anyone who can read the secrets can sign requests as their owner. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        ahl_warn("credentials file %s is readable by %s (mode %03o): anyone who can read it can "
                 "sign requests; chmod 600 %s",
                 path, (st.st_mode & S_IROTH) ? "every user" : "its group",
                 (unsigned)(st.st_mode & 0777), path);
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e) {
                rc = ahl_fail(err, AHL_EPARSE, "%s:%d: unterminated section header", path, lineno);
                goto out;
            }
            if ((rc = finish_profile(creds, profile, akid, secret, path, err)) < 0)
                goto out;
            *e = '\0';
            if (ahl_str_copy(profile, sizeof profile, trim(s + 1)) < 0) {
                rc = ahl_fail(err, AHL_EPARSE, "%s:%d: the profile name is longer than %zu bytes",
                              path, lineno, sizeof profile - 1);
                goto out;
            }
            akid[0] = secret[0] = '\0';
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = ahl_fail(err, AHL_EPARSE, "%s:%d: expected 'name = value'", path, lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (!strcmp(key, "aws_access_key_id") || !strcmp(key, "aws_secret_access_key")) {
            char *dst = key[4] == 'a' ? akid : secret;
            size_t cap = key[4] == 'a' ? sizeof akid : sizeof secret;
            if (strlen(value) >= cap) {
                rc = ahl_fail(err, AHL_EPARSE, "%s:%d: %s is too long", path, lineno, key);
                goto out;
            }
            memcpy(dst, value, strlen(value) + 1);
        }
    }
    if ((rc = finish_profile(creds, profile, akid, secret, path, err)) < 0)
        goto out;
    if (creds->n == before)
        rc = ahl_fail(err, AHL_EPARSE,
                      "%s holds no profile with both aws_access_key_id and aws_secret_access_key",
                      path);
out:
    fclose(f);
    return rc;
}

int ahl_api_credentials_generate(const char *path, struct ahl_api_credentials *creds,
                                 struct ahl_err *err)
{
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t r[16 + 40];
    char akid[21] = "AKIA", secret[41];
    if (ahl_random_bytes(r, sizeof r) < 0)
        return ahl_fail(err, AHL_EIO, "no random bytes for a key pair");
    for (int i = 0; i < 16; i++)
        akid[4 + i] = upper[r[i] % 32];
    akid[20] = '\0';
    for (int i = 0; i < 40; i++)
        secret[i] = b64[r[16 + i] % 64];
    secret[40] = '\0';

    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return ahl_fail(err, AHL_EIO, "cannot create %s: %s", path, strerror(errno));
    char text[256];
    int n = snprintf(text, sizeof text,
                     "# Generated by ahilite serve: this key pair may sign requests.\n"
                     "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
                     akid, secret);
    int ok = n > 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok) {
        unlink(path);
        return ahl_fail(err, AHL_EIO, "cannot write %s", path);
    }
    if (ahl_api_credentials_add(creds, akid, secret) < 0)
        return ahl_fail(err, AHL_ETOOBIG, "too many credentials");
    return 0;
}
