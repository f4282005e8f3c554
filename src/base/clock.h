/* Wall-clock and monotonic time. */
#ifndef AHL_BASE_CLOCK_H
#define AHL_BASE_CLOCK_H

#include <stdint.h>

/* Wall-clock time in milliseconds since the Unix epoch (AWS timestamps are epoch seconds with a
 * millisecond fraction). */
int64_t ahl_now_ms(void);
/* A monotonic clock in nanoseconds, for durations. */
uint64_t ahl_mono_ns(void);

#endif /* AHL_BASE_CLOCK_H */
