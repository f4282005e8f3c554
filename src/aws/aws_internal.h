/* Internals shared by the files of src/aws (not a public header). */
#ifndef AHL_AWS_AWS_INTERNAL_H
#define AHL_AWS_AWS_INTERNAL_H

/* libcurl's global initialisation, once per process (http.c): 0 or AHL_EINTERNAL. */
int ahl__aws_curl_init(void);

#include <stdint.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (sigv4.c). */
int64_t ahl__days_from_civil(int64_t y, int64_t m, int64_t d);

#include "aws/s3.h"

/* An ahl_s3_entry_fn handing an ahl_s3_key_fn the key and size (s3xml.c), for the listings
 * without times. */
struct ahl__s3_untimed {
    ahl_s3_key_fn fn;
    void *ctx;
};
int ahl__s3_drop_time(void *ctx, const char *key, uint64_t size, int64_t mtime_ms);

#endif /* AHL_AWS_AWS_INTERNAL_H */
