/* The DICOM Part-10 writer: the inverse of the normalizer (normalize.h). From an image set's
 * HealthImaging metadata document and one SOPInstanceUID it writes that instance as a Part-10 file
 * whose dataset is in Explicit VR Little Endian (the pixel data native, or encapsulated for a
 * compressed transfer syntax the caller names):
 *
 *   128-byte zero preamble, "DICM", the file meta group (0002), then the attributes of the
 *   Patient, Study, Series and Instance levels merged and in ascending tag order, with the pixel
 *   data (handed in by the caller, frame by frame) at its place.
 *
 * File meta group. (0002,0000) group length, (0002,0001) version 00 01, (0002,0002)
 * MediaStorageSOPClassUID = the instance's SOPClassUID, (0002,0003) MediaStorageSOPInstanceUID =
 * the SOPInstanceUID, (0002,0010) TransferSyntaxUID = Explicit VR Little Endian or
 * opts->transfer_syntax, (0002,0012)
 * ImplementationClassUID = AHL_P10_IMPLEMENTATION_CLASS_UID and (0002,0013)
 * ImplementationVersionName = AHL_P10_IMPLEMENTATION_VERSION_NAME. Other group-0002 attributes
 * the document holds (SourceApplicationEntityTitle, ...) are written as they are.
 *
 * Attributes. Only the "DICOM" maps are read, so HealthImaging's generated keys (ImageFrames,
 * StoredTransferSyntaxUID, ChecksumType, ...) never reach the file. A key is a PS3.6 keyword or
 * 8 hex digits; the VR is chosen by docvr.h, as the DICOM JSON of DICOMweb chooses it: the hex
 * key's "DICOMVRs" entry, else the dictionary's (UN for an unknown tag), and where the dictionary
 * allows several ("US or SS", "OB or OW") the one that fits the value: a sequence for an array
 * of objects, a byte VR for a base64 string (OW for "OB or OW" unless the item's
 * WaveformBitsAllocated is 8 or less), SS for integers when one is negative, or when
 * PixelRepresentation is 1 and all fit SS (else US). Integers that do not fit their VR are
 * refused, not truncated.
 * An attribute present at two levels is written once, from the lowest level. Group lengths
 * (gggg,0000), item and delimiter tags and pixel data tags in the document are left out.
 * Values: text joined with '\' (null components empty), padded to even length with a space (UI:
 * a NUL); IS and DS given as JSON numbers are printed; US SS UL SL UV SV FL FD from JSON numbers
 * (null: 0, or NaN for FL/FD, which JSON cannot carry); AT from "GGGGEEEE"; byte VRs from
 * base64, padded with a zero byte; sequences as defined-length items. Text is UTF-8: when any text
 * value holds a non-ASCII character, SpecificCharacterSet is written as "ISO_IR 192".
 *
 * Pixel data. This module decodes nothing (dicom/ sits below frames/ and blob/): the caller says
 * how long the value is and writes it through a callback, one frame at a time, so the file is
 * never held in memory whole. A value of odd length gets a zero pad byte. Encapsulated pixel data
 * is written as an undefined-length OB with an empty Basic Offset Table and one fragment per call
 * of ahl_p10_fragment.
 *
 * Output goes to a sink callback (ahl_p10_sink_fd writes to a descriptor). Memory: the non-pixel
 * attributes are encoded into one buffer (at most AHL_P10_MAX_HEADER bytes) before they are
 * written; the pixel data is never buffered here.
 *
 * Errors: AHL_ENOTFOUND (no instance with that UID in the document), AHL_EINVAL (a key that is no
 * keyword nor hex tag, a value that does not fit its VR, SOPClassUID missing; the message names
 * the attribute), AHL_ETOOBIG (a value too long for its VR's length field, nesting deeper than
 * AHL_HI_MAX_DEPTH, the header over AHL_P10_MAX_HEADER), AHL_ENOMEM, and whatever the sink or the
 * pixel callback return.
 */
#ifndef AHL_DICOM_P10WRITE_H
#define AHL_DICOM_P10WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

/* ahilite's implementation class UID: a UUID-derived UID under 2.25 (PS3.5 B.2), so no
 * registered root is needed. */
#define AHL_P10_IMPLEMENTATION_CLASS_UID "2.25.271583628221171354680418455128539463030"
#define AHL_P10_IMPLEMENTATION_VERSION_NAME "AHILITE"

#define AHL_P10_MAX_HEADER ((size_t)256 << 20)

/* Receives the file's bytes in order. Non-zero (a negative AHL_E*) stops the write and is
 * returned. */
typedef int (*ahl_p10_sink_fn)(void *ctx, const void *p, size_t n);

/* The pixel data element. Native: write() must hand sink exactly `length` bytes in all (the
 * writer checks, AHL_EINTERNAL otherwise); it may call sink any number of times (once a frame).
 * Encapsulated: the writer writes the element's header (OB, undefined length) and an empty Basic
 * Offset Table item, write() hands each frame to ahl_p10_fragment, and the writer ends the
 * sequence; `length` and `vr` are ignored. */
struct ahl_p10_pixels {
    uint32_t tag;      /* AHL_TAG_PIXEL_DATA (dataset.h); 0 means the same */
    char vr[3];        /* "OB" or "OW" */
    uint64_t length;   /* < 0xFFFFFFFF */
    bool encapsulated; /* one fragment a frame, for a compressed transfer syntax */
    int (*write)(void *ctx, ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err);
    void *ctx;
};

/* What a file may differ in from the plain copy of the document. */
struct ahl_p10_opts {
    /* (0002,0010) TransferSyntaxUID; NULL: Explicit VR Little Endian. The dataset is written in
     * Explicit VR Little Endian either way: only the pixel data of a compressed syntax differs,
     * and the caller hands it in encapsulated. */
    const char *transfer_syntax;
    /* Attributes added to the instance's (keyword or hex keys, as the document's DICOM maps),
     * replacing any of the same tag: e.g. an OriginalAttributesSequence the caller made. */
    const json_t *extra;
};

/* Finds the series and instance objects of sop_instance_uid in doc (borrowed references).
 * 0 or AHL_ENOTFOUND. */
int ahl_p10_find_instance(const json_t *doc, const char *sop_instance_uid, json_t **series,
                          json_t **instance);

/* Writes the Part-10 file of the instance sop_instance_uid of doc to sink. px NULL: no pixel
 * data. On failure the sink may have received part of the file. */
int ahl_p10_write(const json_t *doc, const char *sop_instance_uid, const struct ahl_p10_pixels *px,
                  ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err);

/* ahl_p10_write with options (NULL: the same as ahl_p10_write). */
int ahl_p10_write_with(const json_t *doc, const char *sop_instance_uid,
                       const struct ahl_p10_opts *opts, const struct ahl_p10_pixels *px,
                       ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err);

/* Hands one frame of encapsulated pixel data to sink as an item (FFFE,E000), padded to even
 * length with a zero byte. AHL_ETOOBIG for a frame of 4 GiB or more; else what sink returns. */
int ahl_p10_fragment(ahl_p10_sink_fn sink, void *sink_ctx, const void *p, size_t n);

/* A sink writing to the descriptor *(int *)ctx; AHL_EIO on a write error. */
int ahl_p10_sink_fd(void *ctx, const void *p, size_t n);

#endif /* AHL_DICOM_P10WRITE_H */
