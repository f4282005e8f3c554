/* The bookkeeping of the in-memory caches (GetImageFrame's verified frames, DICOMweb's rendered
 * answers): a chained hash table of entries on an intrusive doubly linked recency list, newest
 * first. The caller embeds a struct ahl_lru_link in its entry, gets the entry back with
 * AHL_LRU_ENTRY, compares its own keys, frees its own entries and does its own locking.
 *
 *     ahl_lru_init(&c->lru, 256);
 *     for (l = *ahl_lru_bucket(&c->lru, h); l; l = l->next_in_bucket) ... l->hash == h, keys equal
 *     ahl_lru_insert(&c->lru, &e->link, h);    a new entry, the newest
 *     ahl_lru_touch(&c->lru, &e->link);        a used entry becomes the newest
 *     ahl_lru_remove(&c->lru, &e->link);       out of the table and the list; then free it
 *     while (c->lru.oldest) drop(AHL_LRU_ENTRY(c->lru.oldest, struct entry, link));
 *     ahl_lru_release(&c->lru);                the table (entries are the caller's)
 */
#ifndef AHL_BASE_LRU_H
#define AHL_BASE_LRU_H

#include <stddef.h>
#include <stdint.h>

struct ahl_lru_link {
    struct ahl_lru_link *newer, *older, *next_in_bucket;
    uint64_t hash;
};

struct ahl_lru {
    struct ahl_lru_link *newest, *oldest; /* both NULL when empty */
    struct ahl_lru_link **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

/* The entry of type `type` whose member `member` is link. */
#define AHL_LRU_ENTRY(link, type, member) ((type *)(void *)((char *)(link)-offsetof(type, member)))

/* An empty table of nbuckets (a power of two) buckets. 0 or AHL_ENOMEM. */
int ahl_lru_init(struct ahl_lru *l, size_t nbuckets);
void ahl_lru_release(struct ahl_lru *l);
/* The head of the chain entries of this hash are on. */
struct ahl_lru_link **ahl_lru_bucket(struct ahl_lru *l, uint64_t hash);
/* Adds n, on no table or list, as the newest; the table doubles when it holds more entries than
 * buckets (and stays as it is when memory is short: longer chains, still correct). */
void ahl_lru_insert(struct ahl_lru *l, struct ahl_lru_link *n, uint64_t hash);
/* Makes n, in the table, the newest. */
void ahl_lru_touch(struct ahl_lru *l, struct ahl_lru_link *n);
/* Takes n out of the table and the list. */
void ahl_lru_remove(struct ahl_lru *l, struct ahl_lru_link *n);
/* FNV-1a of a NUL-terminated string: the caches' key hash. */
uint64_t ahl_lru_hash(const char *s);

#endif /* AHL_BASE_LRU_H */
