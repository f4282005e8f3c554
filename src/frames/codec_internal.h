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
 * ahl_htj2k_encode or ahl_j2k_encode with that many decomposition levels, from f, the frame's
 * verified full-resolution decode: the checksums a decode at each reduced resolution gives
 * (level_checksums.c says why), without decoding. 0, AHL_EINVAL (f not canonical, too many levels),
 * AHL_ENOMEM. */
int ahl__htj2k_level_checksums(const struct ahl_raw_frame *f, uint32_t decompositions,
                               struct ahl_stored_frame *out, struct ahl_err *err);

/* ahl_frame_transcode_as with the encoder given (NULL: the format's own, ahl_htj2k_encode or
 * ahl_j2k_encode), so that a test can hand the verification a wrong codestream and see the frame
 * refused. */
typedef int (*ahl__lossless_encode_fn)(const struct ahl_raw_frame *f, uint8_t **out,
                                       size_t *out_len, struct ahl_err *err);
int ahl__frame_transcode_with(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                              enum ahl_lossless_format fmt, ahl__lossless_encode_fn encode,
                              struct ahl_stored_frame *out, struct ahl_err *err);

/* The decomposition levels a frame of w x h is encoded with (up to 5; fewer when a side is under
 * 32 pixels, so that the lowest level keeps at least one pixel). */
uint32_t ahl__decompositions_for(uint32_t w, uint32_t h);

/* OpenJPEG's side of ahl_j2k_encode (decode_j2k.c): f must be canonical. */
int ahl__j2k_encode(const struct ahl_raw_frame *f, uint32_t decompositions, uint8_t **out,
                    size_t *out_len, struct ahl_err *err);

/* Decodes a JPEG 2000 codestream at full resolution with OpenJPEG and compares it with f, sample
 * for sample; sets *decompositions. The codestream must be one ahl__j2k_encode could have written
 * for f (one tile of f's size at offset 0, f's components, precision and signedness, no
 * subsampling, reversible 5/3 with the same levels in every component, the colour transform
 * exactly when there are 3 components). 0, or AHL_EINTERNAL: "JPEG 2000 round trip is not
 * bit-exact" (a sample differs, named) or "JPEG 2000 verification decode failed" (why). */
int ahl__j2k_verify(const uint8_t *cs, size_t n, const struct ahl_raw_frame *f,
                    uint32_t *decompositions, struct ahl_err *err);

#endif /* AHL_FRAMES_CODEC_INTERNAL_H */
