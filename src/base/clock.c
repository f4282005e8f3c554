/* Clocks; see clock.h. */
#include "base/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "base/banned.h"

static int64_t offset_ms;
static pthread_once_t offset_once = PTHREAD_ONCE_INIT;

static void offset_read(void)
{
    const char *v = getenv("AHILITE_CLOCK_OFFSET");
    if (!v || !*v)
        return;
    char *end;
    errno = 0;
    long long s = strtoll(v, &end, 10);
    /* A hundred years either way is plenty and keeps the product in range. */
    if (errno || *end || s > 3155760000LL || s < -3155760000LL)
        return;
    offset_ms = (int64_t)s * 1000;
}

int64_t ahl_clock_offset_ms(void)
{
    pthread_once(&offset_once, offset_read);
    return offset_ms;
}

int64_t ahl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ahl_now_ms(void)
{
    return ahl_wall_ms() + ahl_clock_offset_ms();
}

struct timespec ahl_deadline(clockid_t clock, uint64_t us)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(us / 1000000);
    ts.tv_nsec += (long)(us % 1000000) * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

uint64_t ahl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
