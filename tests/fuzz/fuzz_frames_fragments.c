// module: frames
/* Fuzzes the mapping of encapsulated fragments to frames (ahl_frames_map_fragments, with its
 * Basic Offset Table check and codestream scan) and the gathering of each frame's bytes.
 * Input: byte 0 frames (1..16), byte 1 fragments (1..32), byte 2 offset table entries (0..16),
 * then 2 bytes (LE) per fragment length, 4 bytes (LE) per offset table entry; the rest is the
 * stream the fragments lie in one after another (a fragment past its end reads short).
 * On success the spans must cover every fragment once, in order, each frame at least one, with
 * the byte counts the fragment lengths give; an empty table is never called invalid. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frames/frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct stream {
    const uint8_t *p;
    size_t n;
};

static int stream_read(void *ctx, uint64_t off, void *buf, size_t n)
{
    const struct stream *s = ctx;
    if (off > s->n || n > s->n - off)
        return AHL_EPARSE;
    memcpy(buf, s->p + off, n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint32_t nframes = data[0] % 16u + 1;
    size_t nfrag = data[1] % 32u + 1, noff = data[2] % 17u;
    size_t head = 3 + 2 * nfrag + 4 * noff;
    if (size < head)
        return 0;
    struct ahl_dcm_fragment frags[32];
    uint32_t bot[16];
    uint64_t pos = 0;
    for (size_t i = 0; i < nfrag; i++) {
        frags[i].length = (uint32_t)(data[3 + 2 * i] | data[4 + 2 * i] << 8);
        frags[i].offset = pos;
        pos += frags[i].length;
    }
    for (size_t i = 0; i < noff; i++) {
        const uint8_t *b = data + 3 + 2 * nfrag + 4 * i;
        bot[i] = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    }
    struct ahl_dcm_pixel px;
    memset(&px, 0, sizeof px);
    px.present = px.encapsulated = true;
    px.fragments = frags;
    px.n_fragments = nfrag;
    px.offset_table = noff ? bot : NULL;
    px.n_offsets = noff;
    struct stream s = {data + head, size - head};
    struct ahl_frame_span spans[16];
    struct ahl_err err;
    bool invalid = true;
    int rc = ahl_frames_map_fragments(&px, nframes, stream_read, &s, spans, &invalid, &err);
    if (rc > 0 || (noff == 0 && invalid))
        abort();
    if (rc < 0)
        return 0;
    size_t next = 0;
    for (uint32_t i = 0; i < nframes; i++) {
        uint64_t bytes = 0;
        if (spans[i].first != next || spans[i].count == 0 || spans[i].count > nfrag - next)
            abort();
        for (size_t k = 0; k < spans[i].count; k++)
            bytes += frags[next + k].length;
        if (bytes != spans[i].bytes)
            abort();
        next += spans[i].count;
        uint8_t *out = NULL;
        size_t len = 0;
        int g = ahl_frames_gather(&px, &spans[i], stream_read, &s, &out, &len, &err);
        if (g > 0 || (g == 0 && (len != bytes || !out)) || (g < 0 && out))
            abort();
        if (g == 0 && len && memcmp(out, s.p + frags[spans[i].first].offset, len) != 0)
            abort();
        free(out);
    }
    if (next != nfrag)
        abort();
    return 0;
}
