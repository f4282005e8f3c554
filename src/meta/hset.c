/* A set of SHA-256 hashes by open addressing (linear probing, at most half full), for the walks
 * that visit each chunk once: the check and the collector. */
#include "meta/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

static size_t hslot(const uint8_t *h, size_t cap)
{
    uint64_t x;
    memcpy(&x, h, sizeof x);
    return (size_t)(x & (cap - 1));
}

bool ahl__hset_has(const struct ahl__hset *s, const uint8_t *h)
{
    if (!s->cap)
        return false;
    for (size_t i = hslot(h, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (ahl__hash_is_zero(s->v[i]))
            return false;
        if (!memcmp(s->v[i], h, AHL_SHA256_LEN))
            return true;
    }
}

int ahl__hset_add(struct ahl__hset *s, const uint8_t *h)
{
    if (ahl__hash_is_zero(h) || ahl__hset_has(s, h))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        struct ahl__hset g = {NULL, s->cap ? s->cap * 2 : 1024, 0};
        if (!(g.v = calloc(g.cap, AHL_SHA256_LEN)))
            return AHL_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (!ahl__hash_is_zero(s->v[i]))
                ahl__hset_add(&g, s->v[i]);
        free(s->v);
        *s = g;
    }
    size_t i = hslot(h, s->cap);
    while (!ahl__hash_is_zero(s->v[i]))
        i = (i + 1) & (s->cap - 1);
    memcpy(s->v[i], h, AHL_SHA256_LEN);
    s->n++;
    return 0;
}

void ahl__hset_clear(struct ahl__hset *s)
{
    if (s->cap)
        memset(s->v, 0, s->cap * AHL_SHA256_LEN);
    s->n = 0;
}

void ahl__hset_release(struct ahl__hset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}
