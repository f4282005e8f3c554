/* The HealthImaging normalizer: turns one DICOM file (as the Part-10 reader left it, dataset.h)
 * into the single-instance HealthImaging metadata document:
 *
 *   {"Patient":{"DICOM":{..}},
 *    "Study":{"DICOM":{..},
 *             "Series":{"<SeriesInstanceUID>":{"DICOM":{..},
 *                       "Instances":{"<SOPInstanceUID>":{"DICOM":{..},"DICOMVRs":{..},
 *                                                        "ImageFrames":[..]}}}}}}
 *
 * The store adds SchemaVersion, DatastoreID and ImageSetID; the frame store adds each frame's
 * ID, checksums and min/max and the instance's StoredTransferSyntaxUID/ChecksumType. Those keys
 * are therefore absent here.
 *
 * Placement. Top-level attributes go to the level levels.h gives their tag; the file meta group
 * (0002) and everything else go to the Instance. An attribute appears at exactly one level, so
 * Patient/Study/Series attributes never repeat in the Instance. An attribute that has to be keyed
 * by its hex tag (below) always stays at the Instance, where its VR can be recorded.
 *
 * Keys. The PS3.6 keyword from the dictionary (dict.h). Eight upper-case hex digits ("001910F9")
 * for private tags (odd groups, private creators included), tags the dictionary does not know,
 * repeating-group members other than the base group (6002,3000; the base 6000,3000 is
 * "OverlayData"), group lengths other than (0002,0000), and values that cannot be typed by their
 * dictionary VR (see UN). Every hex key has its VR in the "DICOMVRs" map beside the "DICOM" map it
 * is in: the Instance always carries "DICOMVRs" ({} when empty); a sequence item carries one
 * only when one of its own attributes has a hex key.
 *
 * Values, by VR (text as the reader produced it: UTF-8 with the file's padding):
 * - IS, DS: strings, padding kept exactly ("1 ", "-2.625000 "); only stray trailing NULs go.
 * - AE AS CS DA DT LO LT PN SH ST TM UC UI UR UT: strings with trailing padding (spaces and
 *   NULs) removed; leading spaces are kept. PN is the plain "Family^Given=..." string, without
 *   empty trailing component groups ("A^B=" -> "A^B", as pydicom and DCMTK read it).
 * - A text value that is empty after removing its padding is null.
 * - US SS UL SL UV SV: JSON integers (UV above 2^63-1 becomes a real). FL FD: JSON reals; FL
 *   prints as the shortest decimal that reads back to the same float ("0.1", not
 *   "0.10000000149011612"); NaN and infinities, which JSON cannot carry, become null.
 * - AT: "GGGGEEEE" hex strings.
 * - OB OW OF OD OL OV UN: base64 strings of the (little-endian) bytes.
 * - Zero-length value: null. Sequences: arrays of item objects keyed the same way; a sequence
 *   without items is null.
 * - Arrays: when the dictionary VM is not "1", the value is an array even with one value
 *   (["3.1.62"]); with VM "1" it is a scalar (a VM-1 text value containing '\' stays one
 *   string). Unknown and private tags are arrays only when they hold more than one value. A
 *   binary value with more values than its VM allows becomes an array rather than losing data.
 *   Empty components of a multi-valued text value are null ("1\\3" -> ["1",null,"3"]).
 * - UN: an explicit UN element whose tag the dictionary knows with one unambiguous VR is typed
 *   by that VR (as pydicom does; private creators become LO), text only if it is valid UTF-8;
 *   otherwise (dictionary VR SQ, ambiguous "US or SS", invalid UTF-8) it keeps the hex key and
 *   VR UN. Private tags other than creators have no dictionary VR: an implicit-VR or UN private
 *   value stays UN bytes (HealthImaging keeps no private dictionary).
 * - Left out: pixel data (7FE0,0010/0008/0009) at any depth, and values the reader left in the
 *   file because they exceeded its inline limit (the importer keeps the top-level binary ones as
 *   bulk data objects, listed under the instance's "BulkData": import/read.c).
 *
 * ImageFrames: one object per frame with "FrameSizeInBytes": for native pixel data
 * Rows x Columns x SamplesPerPixel x BitsAllocated / 8 (rounded up for 1-bit data; two
 * samples per pixel instead of three for YBR_FULL_422 and YBR_PARTIAL_422); for
 * encapsulated data the encoded size in the file (sum of the frame's fragment lengths), taken from
 * the Extended Offset Table, one fragment per frame, all fragments for a single frame, or the
 * Basic Offset Table. When several frames share fragments with no offset table the size is not
 * known from the header and the key is left out. No pixel data: []. NumberOfFrames absent means 1.
 *
 * Errors (AHL_EPARSE with a message naming the attribute): missing or empty StudyInstanceUID,
 * SeriesInstanceUID or SOPInstanceUID; a binary value whose length is not a multiple of its
 * VR's size; text that is not valid UTF-8; pixel data the header does not describe (missing
 * Rows/Columns/BitsAllocated, bad NumberOfFrames, native data shorter than the frames, fewer
 * fragments than frames). AHL_ETOOBIG: nesting deeper than 64 or more than 1,000,000 frames.
 * AHL_ENOMEM.
 */
#ifndef AHL_DICOM_NORMALIZE_H
#define AHL_DICOM_NORMALIZE_H

#include <jansson.h>

#include "base/err.h"
#include "dicom/dataset.h"

#define AHL_HI_MAX_DEPTH 64
#define AHL_HI_MAX_FRAMES 1000000

/* Builds the document for f into *out (a new reference the caller json_decref()s). On failure
 * *out is NULL and err says why. */
int ahl_hi_normalize(const struct ahl_dcm_file *f, json_t **out, struct ahl_err *err);

#endif /* AHL_DICOM_NORMALIZE_H */
