/* A server's token verifier: the issuer and audience it trusts, and keys from a JWKS file that is
 * read again whenever it changes, so that keys rotate without a restart.
 *
 * The file is stat'ed on every verification (well under a microsecond beside a signature check
 * of tens of microseconds) and compared by device, inode, size and modification time, so that a
 * file replaced by rename and one rewritten in place are both noticed. Reading and parsing
 * happen outside the lock; the new set is swapped in under it. Verifications in flight keep the
 * set they started with: each holds a reference, and the last holder frees a replaced set.
 *
 * Verified tokens are remembered in a direct-mapped table keyed by the SHA-256 of the token's
 * bytes, so that a viewer's hundreds of requests with one token pay for one signature check (an
 * RS256 check costs ~25 us, ES256 ~60 us, a hit ~3 us: bench/RESULTS.md). An entry holds the
 * claims and the generation of the key set that verified them; a new key set starts a new
 * generation, so a key taken out of the file stops its tokens at once. The times are checked on
 * every hit against the window the full check computed. A token that fails is not remembered:
 * its next attempt is verified again, and says why again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/codec.h"
#include "base/log.h"
#include "oidc/oidc_internal.h"
#include "base/banned.h"

/* What identifies one version of the file; errnum is set when stat failed. */
struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int errnum;
};

struct cached_token {
    uint8_t digest[AHL_SHA256_LEN];
    uint64_t generation; /* of the key set that verified it; 0: an empty slot */
    struct ahl_oidc_claims claims;
};

struct ahl_oidc {
    char *path, *issuer, *audience;
    pthread_mutex_t lock;
    struct ahl_jwks *keys;      /* the current set (one reference held by this struct) */
    uint64_t generation;        /* of keys: 1, 2, ... */
    struct file_sig seen;       /* the file version last read, valid or not */
    struct cached_token *cache; /* AHL_OIDC_CACHE_SLOTS */
    uint64_t hits;
};

static struct file_sig file_sig(const char *path)
{
    struct file_sig s;
    struct stat st;
    memset(&s, 0, sizeof s);
    if (stat(path, &st) < 0) {
        s.errnum = errno;
        return s;
    }
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime = st.st_mtim;
    return s;
}

static int sig_eq(const struct file_sig *a, const struct file_sig *b)
{
    return a->errnum == b->errnum && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void release_keys(struct ahl_oidc *o, struct ahl_jwks *keys)
{
    pthread_mutex_lock(&o->lock);
    int last = --keys->refs == 0;
    pthread_mutex_unlock(&o->lock);
    if (last)
        ahl_jwks_free(keys);
}

/* Reads the file again if it is not the version last read. */
static void refresh(struct ahl_oidc *o)
{
    struct file_sig now = file_sig(o->path);
    pthread_mutex_lock(&o->lock);
    int same = sig_eq(&now, &o->seen);
    pthread_mutex_unlock(&o->lock);
    if (same)
        return;

    struct ahl_err err;
    struct ahl_jwks *fresh = NULL;
    int rc = ahl_jwks_load(o->path, &fresh, &err);
    /* Replaced while being read: what was read may be newer than `now` says, so the version is
     * not recorded and the next request reads the file again. */
    struct file_sig after = file_sig(o->path);
    struct ahl_jwks *old = NULL;
    pthread_mutex_lock(&o->lock);
    if (!sig_eq(&now, &o->seen)) { /* not already done by another thread */
        if (sig_eq(&now, &after))
            o->seen = now;
        if (rc == 0) {
            fresh->refs = 1;
            old = o->keys;
            o->keys = fresh;
            o->generation++;
            fresh = NULL;
            ahl_info("oidc: read %zu key(s) from %s", o->keys->n, o->path);
        } else {
            ahl_warn("oidc: keeping the %zu key(s) read before: %s", o->keys->n, err.msg);
        }
    }
    pthread_mutex_unlock(&o->lock);
    ahl_jwks_free(fresh);
    if (old)
        release_keys(o, old);
}

int ahl_oidc_open(const struct ahl_oidc_config *cfg, struct ahl_oidc **out, struct ahl_err *err)
{
    struct ahl_oidc *o = calloc(1, sizeof *o);
    int rc;
    *out = NULL;
    if (!o)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    if (!(o->path = strdup(cfg->jwks_path)) || !(o->issuer = strdup(cfg->issuer)) ||
        !(o->audience = strdup(cfg->audience)) ||
        !(o->cache = calloc(AHL_OIDC_CACHE_SLOTS, sizeof *o->cache))) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&o->lock, NULL);
    o->seen = file_sig(o->path);
    if ((rc = ahl_jwks_load(o->path, &o->keys, err)) < 0) {
        pthread_mutex_destroy(&o->lock);
        goto fail;
    }
    o->keys->refs = 1;
    o->generation = 1;
    *out = o;
    return 0;
fail:
    free(o->cache);
    free(o->path);
    free(o->issuer);
    free(o->audience);
    free(o);
    return rc;
}

int ahl_oidc_verify(struct ahl_oidc *o, const char *token, size_t n, int64_t now_s,
                    struct ahl_oidc_claims *out, struct ahl_err *err)
{
    uint8_t digest[AHL_SHA256_LEN];
    refresh(o);
    ahl_sha256(token, n, digest);
    struct cached_token *slot =
        &o->cache[(digest[0] | (size_t)digest[1] << 8) % AHL_OIDC_CACHE_SLOTS];
    pthread_mutex_lock(&o->lock);
    if (slot->generation == o->generation &&
        ahl_memeq_ct(slot->digest, digest, sizeof digest) == 0 &&
        now_s >= slot->claims.valid_from && now_s < slot->claims.valid_until) {
        *out = slot->claims;
        o->hits++;
        pthread_mutex_unlock(&o->lock);
        return 0;
    }
    struct ahl_jwks *keys = o->keys;
    uint64_t generation = o->generation;
    keys->refs++;
    pthread_mutex_unlock(&o->lock);

    struct ahl_jwt_policy pol = {.issuer = o->issuer, .audience = o->audience, .now_s = now_s};
    int rc = ahl_jwt_verify(keys, token, n, &pol, out, err);
    pthread_mutex_lock(&o->lock);
    if (rc == 0) {
        memcpy(slot->digest, digest, sizeof digest);
        slot->generation = generation;
        slot->claims = *out;
    }
    int last = --keys->refs == 0;
    pthread_mutex_unlock(&o->lock);
    if (last)
        ahl_jwks_free(keys);
    return rc;
}

uint64_t ahl_oidc_cache_hits(struct ahl_oidc *o)
{
    pthread_mutex_lock(&o->lock);
    uint64_t n = o->hits;
    pthread_mutex_unlock(&o->lock);
    return n;
}

void ahl_oidc_close(struct ahl_oidc *o)
{
    if (!o)
        return;
    ahl_jwks_free(o->keys);
    pthread_mutex_destroy(&o->lock);
    free(o->cache);
    free(o->path);
    free(o->issuer);
    free(o->audience);
    free(o);
}
