/* The DICOM Part-10 reader: turns a file (or a buffer) into a struct ahl_dcm_file (dataset.h).
 *
 * What it reads: with or without the 128-byte preamble and "DICM"; the file meta group (always
 * explicit VR little endian); files without a meta group or without a transfer syntax, whose
 * encoding is inferred from the first element as pydicom does (implicit VR LE when the data looks
 * like it, explicit LE/BE when a VR is present); implicit VR LE, explicit VR LE, explicit VR BE,
 * deflated explicit VR LE (inflated as a stream) and every encapsulated syntax. Defined and
 * undefined lengths, nested sequences, delimiters, UN of undefined length (parsed as an implicit
 * VR LE sequence), private tags (kept, with their creators, in tag order) and Specific Character
 * Set (text converted to UTF-8; bytes that do not decode become U+FFFD).
 *
 * Guarantees (besides dataset.h's invariants):
 * - Bounded memory: the file is read through a fixed window; pixel data is located, never read;
 *   other values longer than limits.max_inline stay in the file; the inline total, the number of
 *   elements, the nesting depth and the number of pixel fragments are capped (struct
 *   ahl_p10_limits). Reading a 2 GB file with the defaults costs well under 64 MB.
 * - Every failure is an error with the byte offset and what was expected, e.g.
 *   "truncated element (7FE0,0010) at offset 1234: 65536 bytes declared, 400 left". The reader
 *   never returns a partial dataset: on error *out is NULL.
 * - Offsets (value_offset, fragment offsets) are byte offsets in the file; for deflated files
 *   (f->deflated) they are offsets in the logical stream "file bytes up to the end of the meta
 *   group, then the inflated bytes", which cannot be seeked to without inflating.
 * - Big-endian files: binary values in the dataset are swapped to little endian; pixel data is
 *   not read, so its bytes in the file stay big endian (f->big_endian says so).
 * - Duplicate tags in one dataset: the first is kept, later ones are dropped (as DCMTK does);
 *   elements out of order are sorted.
 * - The extended offset table (7FE0,0001)/(7FE0,0002), if present, stays in the dataset as OV
 *   values; f->pixel.extended_offsets_lengths holds the lengths table (one per fragment) when its
 *   entry count matches the fragment count.
 *
 * Calling sequence:
 *
 *     struct ahl_dcm_file *f;
 *     struct ahl_err err;
 *     if (ahl_p10_read_path("x.dcm", NULL, &f, &err) < 0) { report(err.msg); ... }
 *     const struct ahl_dcm_elem *e = ahl_dcm_find(&f->ds, AHL_DCM_TAG(0x0010, 0x0010));
 *     ...
 *     ahl_dcm_file_free(f);
 *
 * Files come only from these functions (ahl_dcm_file_free relies on the reader's allocation).
 * The reader keeps no global state; concurrent reads in several threads are fine.
 */
#ifndef AHL_DICOM_P10_H
#define AHL_DICOM_P10_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dicom/dataset.h"

struct ahl_p10_limits {
    uint32_t max_inline;     /* values longer than this stay in the file (value == NULL) */
    size_t max_inline_total; /* total bytes of inline values per file */
    unsigned max_depth;      /* sequence nesting depth */
    size_t max_elements;     /* elements (including items) per file */
    size_t max_fragments;    /* encapsulated pixel data fragments */
};

/* Defaults: 256 KiB per value, 16 MiB of values in all, depth 32, 500,000 elements (56 bytes
 * each: 27 MiB), 500,000 fragments (12 bytes each, plus up to as many offset-table entries). The
 * worst case a file can cost with them, window and conversion buffer included, is about 58 MiB. */
void ahl_p10_limits_default(struct ahl_p10_limits *lim);

/* Reads the file at path. lim NULL means the defaults. On success *out is the file (free with
 * ahl_dcm_file_free); on failure *out is NULL and err (if given) says what and where.
 * AHL_EIO (cannot open/read), AHL_EPARSE (not DICOM, malformed), AHL_ETOOBIG (a limit),
 * AHL_EUNSUPPORTED, AHL_ENOMEM. */
int ahl_p10_read_path(const char *path, const struct ahl_p10_limits *lim, struct ahl_dcm_file **out,
                      struct ahl_err *err);
/* Same from an open descriptor, read from its current position to EOF (offsets count from there).
 * The descriptor is not closed. */
int ahl_p10_read_fd(int fd, const struct ahl_p10_limits *lim, struct ahl_dcm_file **out,
                    struct ahl_err *err);
/* Same from memory (n bytes at data), e.g. for fuzzing or objects already fetched. The values are
 * copied; data may be freed after the call. */
int ahl_p10_read_mem(const void *data, size_t n, const struct ahl_p10_limits *lim,
                     struct ahl_dcm_file **out, struct ahl_err *err);

/* Transfer syntax UIDs the reader knows by name. */
#define AHL_TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define AHL_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define AHL_TS_DEFLATED_LE "1.2.840.10008.1.2.1.99"
#define AHL_TS_EXPLICIT_BE "1.2.840.10008.1.2.2"

/* true when the VR's value is text (AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT). */
bool ahl_dcm_vr_is_text(const char *vr);

#endif /* AHL_DICOM_P10_H */
