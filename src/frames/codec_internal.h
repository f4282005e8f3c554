/* Helpers shared by the files of the frames module (not part of its interface): the canonical
 * frame allocator and sample fix-ups, geometry checks, transfer syntax comparison, and the C++
 * shims' C entry points (shim.h). */
#ifndef AHL_FRAMES_CODEC_INTERNAL_H
#define AHL_FRAMES_CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frames/frames.h"

/* Allocates out->data for a canonical frame of this shape (zero-filled) and fills the fields.
 * bytes_per_sample follows from precision. AHL_ETOOBIG beyond AHL_FRAME_MAX_BYTES, AHL_ENOMEM. */
int ahl__raw_frame_alloc(struct ahl_raw_frame *out, uint32_t width, uint32_t height,
                         uint16_t components, uint16_t precision, bool is_signed,
                         const char *photometric, struct ahl_err *err);

/* Brings every sample of f into canonical range: sign-extends signed samples from f->precision
 * bits, clears the bits above the precision of unsigned ones. */
void ahl__raw_frame_normalize(struct ahl_raw_frame *f);

/* Compares the decoded geometry against the description; fails with a message naming the codec. */
int ahl__check_geometry(const struct ahl_pixel_desc *d, const char *codec, uint32_t width,
                        uint32_t height, uint32_t components, struct ahl_err *err);

/* Copies a UID or code string into a field meant to hold it (one of the same size, or a constant
 * that fits): ahl_str_copy, with a value that does not fit reported as the internal error it is
 * (AHL_EINTERNAL), never cut. */
int ahl__copy_field(char *dst, size_t cap, const char *src, struct ahl_err *err);

/* Compares a transfer syntax UID (which may carry a trailing NUL or space) with a constant. */
bool ahl__ts_is(const char *ts, const char *uid);

#include "frames/shim.h"

/* The number of resolution levels of a J2K/HTJ2K codestream (decompositions + 1), the smallest
 * over its components. */
int ahl__j2k_resolutions(const uint8_t *src, size_t n, uint32_t *levels, struct ahl_err *err);

/* Fills out->levels / n_levels (decompositions + 1 levels, lowest first) for a frame encoded by
 * ahl_htj2k_encode with that many decomposition levels, from f, the frame's verified
 * full-resolution decode: the checksums a decode at each reduced resolution gives
 * (level_checksums.c says why), without decoding. 0, AHL_EINVAL (f not canonical, too many levels),
 * AHL_ENOMEM. */
int ahl__htj2k_level_checksums(const struct ahl_raw_frame *f, uint32_t decompositions,
                               struct ahl_stored_frame *out, struct ahl_err *err);

/* ahl_frame_transcode with the HTJ2K encoder given (ahl_htj2k_encode in production), so that a
 * test can hand the verification a wrong codestream and see the frame refused. */
typedef int (*ahl__htj2k_encode_fn)(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                                    struct ahl_err *err);
int ahl__frame_transcode_with(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                              ahl__htj2k_encode_fn encode, struct ahl_stored_frame *out,
                              struct ahl_err *err);

#endif /* AHL_FRAMES_CODEC_INTERNAL_H */
