/* The C entry points of the frames module's C++ files (htj2k_encode.cc and htj2k_decode.cc:
 * OpenJPH; jpeg_ijg.cc: DCMTK's IJG JPEG decoders). Plain C types only, so both languages include
 * it. Errors come back as text in errbuf; no exception crosses these functions. */
#ifndef AHL_FRAMES_SHIM_H
#define AHL_FRAMES_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 0 on success; -1 (message in errbuf) or -2 (out of memory). *out is malloc'd. */
int ahl__ojph_encode(const uint8_t *samples, uint32_t width, uint32_t height, uint32_t components,
                     uint32_t bytes_per_sample, uint32_t precision, bool is_signed,
                     uint32_t decompositions, bool colour_transform, uint8_t **out, size_t *out_len,
                     char *errbuf, size_t errlen);

/* Decodes an HTJ2K codestream at full resolution and compares it, row by row, with expected
 * (expected_len bytes, canonical as frames.h says: interleaved, little-endian, 1 byte per sample
 * for precision <= 8, else 2, signed samples two's complement); sets *decompositions. The
 * codestream must be one ahl__ojph_encode could have written for that frame: width x height at
 * offset 0, `components` components of `precision` bits, signed as is_signed, no subsampling,
 * reversible, the colour transform exactly when there are 3 components; else -3 (what it is, in
 * errbuf). 0 when every decoded sample equals the expected one; -5 when a row differs (or a
 * sample is outside the range of its precision), -1 when OpenJPH fails (errbuf), -2 out of
 * memory. */
int ahl__ojph_verify(const uint8_t *cs, size_t n, const uint8_t *expected, size_t expected_len,
                     uint32_t width, uint32_t height, uint32_t components, uint32_t precision,
                     bool is_signed, uint32_t *decompositions, char *errbuf, size_t errlen);

/* Decodes a JPEG (any process DCMTK's IJG 8/12/16-bit libraries support) into out (out_len bytes,
 * interleaved; 1 byte per sample for bits <= 8, else 2 bytes native-endian). bits selects the
 * library (8, 12 or 16). convert_ybr asks for YCbCr -> RGB conversion (*converted tells whether
 * the decoder converted). 0, -1 with errbuf. */
int ahl__ijg_decode(const uint8_t *src, size_t n, int bits, bool convert_ybr, bool is_signed,
                    uint8_t *out, size_t out_len, bool *converted, char *errbuf, size_t errlen);

#endif /* AHL_FRAMES_SHIM_H */
