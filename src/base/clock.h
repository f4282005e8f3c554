/* Wall-clock and monotonic time. */
#ifndef AHL_BASE_CLOCK_H
#define AHL_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock time in milliseconds since the Unix epoch (AWS timestamps are epoch seconds with a
 * millisecond fraction). */
int64_t ahl_now_ms(void);
/* A monotonic clock in nanoseconds, for durations. */
uint64_t ahl_mono_ns(void);
/* The time us microseconds from now on clock (CLOCK_REALTIME, or CLOCK_MONOTONIC for a condition
 * variable made with that clock): a deadline for pthread_cond_timedwait. */
struct timespec ahl_deadline(clockid_t clock, uint64_t us);

#endif /* AHL_BASE_CLOCK_H */
