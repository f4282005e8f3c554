// module: frames
/* Fuzzes the JPEG decoders (libjpeg-turbo for 8-bit lossy, DCMTK IJG for 12-bit and lossless) with
 * an arbitrary pixel description (fuzz_frames_common.h). */
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
    if (fuzz_frames_desc(data, size, AHL_TS_JPEG_LOSSLESS_SV1, &d) < 0)
        return 0;
    int rc = ahl_decode_jpeg(&d, data + 6, size - 6, &f, &err);
    fuzz_frames_check(rc, &f);
    ahl_raw_frame_release(&f);
    return 0;
}
