// module: frames
/* Fuzzes the JPEG 2000 / HTJ2K decoder (OpenJPEG), full and reduced resolution with an arbitrary
 * pixel description (fuzz_frames_common.h). */
#include "fuzz.h"

#include <stddef.h>
#include <stdint.h>

#include "fuzz_frames_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ahl_pixel_desc d;
    struct ahl_raw_frame f;
    struct ahl_err err;
    if (fuzz_frames_desc(data, size, AHL_TS_J2K_LOSSLESS, &d) < 0)
        return 0;
    int rc = ahl_decode_j2k(&d, data + 6, size - 6, 0, &f, &err);
    fuzz_frames_check(rc, &f);
    ahl_raw_frame_release(&f);
    if (rc == 0) {
        rc = ahl_decode_j2k(&d, data + 6, size - 6, 1 + data[1] % 3, &f, &err);
        fuzz_frames_check(rc, &f);
        ahl_raw_frame_release(&f);
    }
    return 0;
}
