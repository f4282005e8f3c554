/* A byte-budgeted LRU cache of rendered DICOMweb metadata answers, and of the instance nodes that
 * frames requests read (docs/dicomweb.md#performance).
 *
 * An answer is a function of the stored versions it was built from and of the parts of the
 * request that change its bytes (the resource, the UIDs, the BulkDataURI base from Host, the
 * selection parameters). Versions are immutable, so an answer keyed by all of those never goes
 * stale: the caller resolves the selection (which sets, which versions, their document roots) on
 * every request and makes the key from the result, so an update or a deletion changes the key
 * and the old entry is never found again; it ages out of the budget.
 *
 * Each entry holds the answer twice: as is, and gzip'd (compressed once, when stored), so a
 * client that accepts gzip costs no compression. The budget counts both bodies and the key; the
 * least recently used entries are dropped to stay under it, and an answer larger than a quarter
 * of the budget is not kept. All calls are thread-safe (one mutex; a hit copies the body out
 * under it). Used by src/api only.
 *
 *     struct ahl__dwcache *c;
 *     ahl__dwcache_new(64 << 20, &c);
 *     if (ahl__dwcache_get(c, key, gzip, &body) == 1) ... a hit, body holds the bytes
 *     ... else render, then ahl__dwcache_put(c, key, plain, plain_len, gz, gz_len);
 *     ahl__dwcache_free(c);
 */
#ifndef AHL_API_DICOMWEB_CACHE_H
#define AHL_API_DICOMWEB_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

struct ahl__dwcache;

/* A cache of at most budget bytes (0: a cache that keeps nothing). 0 or AHL_ENOMEM. */
int ahl__dwcache_new(size_t budget, struct ahl__dwcache **out);
void ahl__dwcache_free(struct ahl__dwcache *c);

/* Looks key up. On a hit appends the gzip'd body (gzip true) or the plain body to out and returns
 * 1, making the entry the most recently used; 0 on a miss; AHL_ENOMEM when out cannot take it. */
int ahl__dwcache_get(struct ahl__dwcache *c, const char *key, bool gzip, struct ahl_buf *out);

/* Stores copies of the two bodies under key (replacing an entry with that key), dropping the
 * least recently used entries to stay within the budget. An answer too large for the budget is
 * not kept (0 all the same). 0, or AHL_ENOMEM (nothing stored). */
int ahl__dwcache_put(struct ahl__dwcache *c, const char *key, const void *plain, size_t plain_len,
                     const void *gz, size_t gz_len);

/* Bytes held and entries, for tests and the log. */
size_t ahl__dwcache_bytes(struct ahl__dwcache *c);
size_t ahl__dwcache_count(struct ahl__dwcache *c);

/* Compresses p as one gzip member (RFC 1952) into out. 0, AHL_ENOMEM. */
int ahl__gzip(const void *p, size_t n, struct ahl_buf *out);

#endif /* AHL_API_DICOMWEB_CACHE_H */
