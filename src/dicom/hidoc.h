/* From the HealthImaging metadata document back to DICOM: the PS3.18 Annex F DICOM JSON of one
 * instance, as DICOMweb's metadata resources (WADO-RS) answer it.
 *
 * Input: the nodes of one instance's path through an image set's document (normalize.h, and
 * docs/metadata.md): the Patient, Study and Series nodes and the Instance node, each an object
 * whose "DICOM" map holds attributes keyed by PS3.6 keyword or by 8 upper-case hex digits, with
 * "DICOMVRs" beside it giving the VR of hex keys. Everything else in a node (ImageFrames,
 * StoredTransferSyntaxUID, ChecksumType, Series, Instances) is HealthImaging's own and is left out.
 *
 * Output: one object with every attribute of the four levels, keyed "GGGGEEEE" in ascending tag
 * order (an attribute present at two levels: the lower level wins), each {"vr": "XX", ...}:
 * - "Value": [...]: strings for text VRs (split at '\' except LT ST UT UR; leading spaces of the
 *   split ones removed, as dicomjson.h does), numbers for IS and DS (their text parsed; text that
 *   is not a number stays a string) and for the binary numeric VRs, {"Alphabetic", "Ideographic",
 *   "Phonetic"} objects for PN, "GGGGEEEE" strings for AT, item objects for SQ.
 * - "InlineBinary": the stored base64 for OB OD OF OL OV OW UN.
 * - only "vr" for an empty (null) value or a sequence without items.
 * The VR is chosen by docvr.h, as the Part-10 writer chooses it: DICOMVRs' for a hex key, else
 * the dictionary's; where the dictionary allows several, from the value (a base64 string: the
 * first byte VR offered, "OB or OW" being OW unless WaveformBitsAllocated in the same map is 8
 * or less; "US or SS": SS when a value is negative, or PixelRepresentation is 1 and every value
 * fits). A keyword
 * the dictionary does not know, and the file meta group (0002), are left out: DICOMweb metadata
 * describes the dataset, not the file it came in.
 * Pixel data is not in the document: with opts->pixel_bulk_uri, (7FE0,0010) is added as
 * {"vr": "OW" when BitsAllocated > 8 else "OB", "BulkDataURI": pixel_bulk_uri}.
 *
 * Values kept as bulk data (the instance's "BulkData" map) are added the same way with
 * opts->bulk_uri_prefix.
 *
 * Nesting deeper than AHL_HIDOC_MAX_DEPTH is AHL_ETOOBIG (the document's own parsers cap it lower).
 */
#ifndef AHL_DICOM_HIDOC_H
#define AHL_DICOM_HIDOC_H

#include <jansson.h>

#include "base/err.h"

#define AHL_HIDOC_MAX_DEPTH 64

struct ahl_hidoc_opts {
    const char *pixel_bulk_uri; /* NULL: no (7FE0,0010) element */
    /* Each entry {"ID", "VR"} of an instance's "BulkData" map (keyed "GGGGEEEE") becomes
     * {"vr": VR, "BulkDataURI": bulk_uri_prefix ID bulk_uri_suffix}; NULL prefix: left out. */
    const char *bulk_uri_prefix, *bulk_uri_suffix;
};

/* Builds the DICOM JSON object of one instance into *out (a new reference the caller decrefs).
 * patient, study and series may be NULL (a level the document lacks); instance may not. opts may
 * be NULL. 0, AHL_ENOMEM, AHL_EPARSE (a node or value of the wrong JSON type, naming its key),
 * AHL_ETOOBIG. */
int ahl_hidoc_instance(const json_t *patient, const json_t *study, const json_t *series,
                       const json_t *instance, const struct ahl_hidoc_opts *opts, json_t **out,
                       struct ahl_err *err);

/* The first value of an integer attribute of a metadata document's DICOM object (keyed by
 * keyword): a JSON integer, or the text of an IS value; dflt when absent or not a number. */
long ahl_hidoc_int(const json_t *dicom, const char *keyword, long dflt);

#endif /* AHL_DICOM_HIDOC_H */
