/* Wall-clock and monotonic time. */
#ifndef AHL_BASE_CLOCK_H
#define AHL_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The server's clock: wall-clock time in milliseconds since the Unix epoch (AWS timestamps are
 * epoch seconds with a millisecond fraction), plus the whole seconds of the environment variable
 * AHILITE_CLOCK_OFFSET (read once; may be negative; 0 when unset or not a number). Every time the
 * server records or compares against records (createdAt, lastAccessedAt, storage tiers, deletion
 * retention) comes from here, so tests can move it by days without waiting. */
int64_t ahl_now_ms(void);
/* The real wall clock, without the offset: for checking what clients stamped with theirs
 * (SigV4's X-Amz-Date, a token's exp). */
int64_t ahl_wall_ms(void);
/* The offset ahl_now_ms adds, in milliseconds. */
int64_t ahl_clock_offset_ms(void);
/* A monotonic clock in nanoseconds, for durations. */
uint64_t ahl_mono_ns(void);
/* The time us microseconds from now on clock (CLOCK_REALTIME, or CLOCK_MONOTONIC for a condition
 * variable made with that clock): a deadline for pthread_cond_timedwait. */
struct timespec ahl_deadline(clockid_t clock, uint64_t us);

#endif /* AHL_BASE_CLOCK_H */
