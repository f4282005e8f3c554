/* The caches' hash table, recency list and key hash (lru.h). */
#include "base/lru.h"

#include <stdlib.h>

#include "base/err.h"
#include "base/banned.h"

int ahl_lru_init(struct ahl_lru *l, size_t nbuckets)
{
    *l = (struct ahl_lru){.nbuckets = nbuckets};
    l->buckets = calloc(nbuckets, sizeof *l->buckets);
    return l->buckets ? 0 : AHL_ENOMEM;
}

void ahl_lru_release(struct ahl_lru *l)
{
    free(l->buckets);
    *l = (struct ahl_lru){0};
}

struct ahl_lru_link **ahl_lru_bucket(struct ahl_lru *l, uint64_t hash)
{
    return &l->buckets[hash & (l->nbuckets - 1)];
}

static void list_push(struct ahl_lru *l, struct ahl_lru_link *n)
{
    n->older = l->newest;
    n->newer = NULL;
    if (l->newest)
        l->newest->newer = n;
    l->newest = n;
    if (!l->oldest)
        l->oldest = n;
}

static void list_unlink(struct ahl_lru *l, struct ahl_lru_link *n)
{
    if (n->newer)
        n->newer->older = n->older;
    else
        l->newest = n->older;
    if (n->older)
        n->older->newer = n->newer;
    else
        l->oldest = n->newer;
    n->newer = n->older = NULL;
}

static void grow(struct ahl_lru *l)
{
    size_t n = l->nbuckets * 2;
    struct ahl_lru_link **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (struct ahl_lru_link *e = l->buckets[i], *next; e; e = next) {
            next = e->next_in_bucket;
            e->next_in_bucket = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->nbuckets = n;
}

void ahl_lru_insert(struct ahl_lru *l, struct ahl_lru_link *n, uint64_t hash)
{
    if (l->count >= l->nbuckets)
        grow(l);
    n->hash = hash;
    struct ahl_lru_link **b = ahl_lru_bucket(l, hash);
    n->next_in_bucket = *b;
    *b = n;
    list_push(l, n);
    l->count++;
}

void ahl_lru_touch(struct ahl_lru *l, struct ahl_lru_link *n)
{
    list_unlink(l, n);
    list_push(l, n);
}

void ahl_lru_remove(struct ahl_lru *l, struct ahl_lru_link *n)
{
    for (struct ahl_lru_link **p = ahl_lru_bucket(l, n->hash); *p; p = &(*p)->next_in_bucket) {
        if (*p == n) {
            *p = n->next_in_bucket;
            break;
        }
    }
    list_unlink(l, n);
    l->count--;
}

uint64_t ahl_lru_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
