/* Shared input format of the frames fuzz targets: a 6-byte header that picks the pixel
 * description, then the frame bytes handed to one decoder entry point.
 *   byte 0: bit 0 three samples (RGB), bit 1 signed, bit 2 16-bit container, bit 3 planar
 *   byte 1: BitsStored (clamped into 1..container bits)
 *   bytes 2-3, 4-5: Rows, Columns (little endian, reduced to 1..512 to keep runs fast)
 * Every call must return 0 or a negative AHL_E* code, never crash or leak; on success the frame
 * must have the size the description implies. */
#ifndef AHL_FUZZ_FRAMES_COMMON_H
#define AHL_FUZZ_FRAMES_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frames/frames.h"

static int fuzz_frames_desc(const uint8_t *data, size_t size, const char *ts,
                            struct ahl_pixel_desc *d)
{
    if (size < 6)
        return -1;
    memset(d, 0, sizeof *d);
    d->samples_per_pixel = (data[0] & 1) ? 3 : 1;
    d->pixel_representation = (data[0] >> 1) & 1;
    d->bits_allocated = (data[0] & 4) ? 16 : 8;
    d->planar_configuration = (data[0] >> 3) & 1;
    d->bits_stored = data[1] % d->bits_allocated + 1;
    d->high_bit = (uint16_t)(d->bits_stored - 1);
    d->rows = (uint32_t)(data[2] | data[3] << 8) % 512 + 1;
    d->columns = (uint32_t)(data[4] | data[5] << 8) % 512 + 1;
    d->number_of_frames = 1;
    memcpy(d->photometric, d->samples_per_pixel == 3 ? "RGB" : "MONOCHROME2",
           d->samples_per_pixel == 3 ? 4 : 12);
    size_t n = strlen(ts);
    memcpy(d->transfer_syntax, ts, n + 1);
    return 0;
}

static void fuzz_frames_check(int rc, const struct ahl_raw_frame *f)
{
    if (rc > 0)
        abort();
    if (rc == 0 &&
        (!f->data || f->len != (size_t)f->width * f->height * f->components * f->bytes_per_sample))
        abort();
    if (rc < 0 && f->data)
        abort();
}

#endif /* AHL_FUZZ_FRAMES_COMMON_H */
