/* Storage tiers: when each image set was last accessed, and the tier that follows from it
 * (docs/decisions.md#storage-tier-and-last-access).
 *
 * An image set is in FREQUENT_ACCESS until no access has touched it for archive_days (30)
 * consecutive days, then in ARCHIVE_INSTANT_ACCESS until the next access brings it back. The
 * tier is not stored: it is computed from the last access and the server's clock (ahl_now_ms,
 * which AHILITE_CLOCK_OFFSET moves), so nothing has to run for a set to change tiers.
 *
 * Accesses are recorded two ways:
 *   - writes (a new version: import, copy into a set, update, revert, STOW-RS) set the set's
 *     last_accessed_at in the write transaction that writes its row anyway (meta/doc.c);
 *   - reads (GetImageSetMetadata, GetImageFrame, DICOMweb retrieve) must not become write
 *     transactions, so the API calls ahl_meta_touch, which records the access in a table in
 *     memory, of at most access_table_max sets, at a day's resolution: a set already accessed
 *     today, by its stored value or by the table, costs a comparison. ahl_meta_access_flush
 *     writes every access the table holds in one write transaction (ahl_store_imageset_touch,
 *     which only moves a value forward, so several nodes may flush in any order); a thread does
 *     so every access_flush_ms when that is set, and ahl_meta_close does so last. When the table
 *     is full of accesses not yet written, the touching thread flushes it first (one write for
 *     access_table_max sets).
 * A touch not yet flushed already counts for this process's answers (ahl_meta_last_access), so
 * a GetImageSet right after a GetImageFrame says FREQUENT_ACCESS; other nodes see it once it is
 * flushed. What a crash loses is the accesses since the last flush.
 *
 * Thread-safe: the table has its own lock, a leaf held briefly (no store call under it); one
 * flush runs at a time, holding no lock a writer could wait for while it commits.
 */
#ifndef AHL_META_ACCESS_H
#define AHL_META_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct ahl_meta;

#define AHL_META_ACCESS_TABLE_DEFAULT 16384 /* sets whose accesses are held in memory */
#define AHL_META_ARCHIVE_DAYS_DEFAULT 30
#define AHL_DAY_MS ((int64_t)86400000)

enum ahl_storage_tier { AHL_TIER_FREQUENT_ACCESS, AHL_TIER_ARCHIVE_INSTANT_ACCESS };

/* The model's name of a tier. */
const char *ahl_storage_tier_name(enum ahl_storage_tier t);

/* Records a read access of the set, now. stored_ms is the set's last access as the caller read
 * it from the store (-1: not read), so that a set whose stored access is of today costs nothing.
 * Never fails the read: a flush it has to run that fails is logged, and the access kept for the
 * next flush when there is room, else dropped. */
void ahl_meta_touch(struct ahl_meta *m, const char *imageset_id, int64_t stored_ms);

/* The set's last access as this process knows it: the later of stored_ms (what the store holds)
 * and an access recorded here and not yet flushed. */
int64_t ahl_meta_last_access(struct ahl_meta *m, const char *imageset_id, int64_t stored_ms);

/* The tier of a set last accessed at last_ms, now. */
enum ahl_storage_tier ahl_meta_storage_tier(const struct ahl_meta *m, int64_t last_ms);

/* Writes every access recorded and not yet written, in one write transaction. 0 (also when
 * there was nothing to write) or the store's error, the accesses then kept for the next flush. */
int ahl_meta_access_flush(struct ahl_meta *m, struct ahl_err *err);

struct ahl_meta_access_stats {
    uint64_t recorded;     /* touches that changed the table (the first of a set's day) */
    uint64_t flushes;      /* write transactions committed by flushes */
    uint64_t sets_written; /* accesses those flushes wrote */
    uint64_t flush_failures;
    uint64_t dropped; /* accesses lost: the table was full and could not be flushed */
    size_t entries;   /* sets in the table */
    size_t pending;   /* of them, with an access not yet written */
};
void ahl_meta_access_stats(struct ahl_meta *m, struct ahl_meta_access_stats *out);

#endif /* AHL_META_ACCESS_H */
