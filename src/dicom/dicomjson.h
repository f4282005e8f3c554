/* The DICOM JSON model (PS3.18 Annex F) of a dataset the Part-10 reader produced.
 *
 * Each element becomes "GGGGEEEE": {"vr": "XX", ...} with
 * - "Value": [...] for text and numbers: strings for AE AS CS DA DT LO LT SH ST TM UC UI UR UT
 *   (multi-valued VRs split at '\', surrounding spaces trimmed, trailing spaces only for
 *   LT ST UT UR; an empty value in a list is null); numbers for DS IS (parsed from their text;
 *   a DS or IS that is not a number stays a string) and US SS UL SL UV SV FL FD; "GGGGEEEE"
 *   strings for AT; {"Alphabetic", "Ideographic", "Phonetic"} objects for PN; item objects for SQ.
 * - "InlineBinary": base64 for OB OD OF OL OV OW UN.
 * - nothing but the VR for an empty value, and for values left in the file when no bulk data
 *   base is given; with a base, "BulkDataURI": "<base>?offset=N&length=L" (pixel data too).
 * Group lengths (gggg,0000) are left out, as DICOM JSON has no place for them; a UN of undefined
 * length (which the reader parsed as a sequence) is written as SQ.
 * Non-finite FL/FD values cannot be JSON numbers and are written as null.
 *
 * Recursion follows the dataset's nesting, which the reader caps (ahl_p10_limits.max_depth).
 */
#ifndef AHL_DICOM_DICOMJSON_H
#define AHL_DICOM_DICOMJSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/err.h"
#include "dicom/dataset.h"

struct ahl_dicomjson_opts {
    const char *bulk_base; /* NULL: values left in the file are omitted */
};

/* Builds the JSON object of ds into *out (a new reference the caller decrefs).
 * 0, AHL_ENOMEM, AHL_EPARSE (a value whose length does not fit its VR, e.g. 3 bytes of US). */
int ahl_dicomjson_from_dataset(const struct ahl_dcm_dataset *ds, const struct ahl_dicomjson_opts *o,
                               json_t **out, struct ahl_err *err);

/* A PN value as DICOM JSON's object: component groups split at '=' into "Alphabetic",
 * "Ideographic" and "Phonetic", trailing spaces and NULs trimmed, empty groups left out. NULL when
 * out of memory. */
json_t *ahl_dicomjson_pn(const char *s, size_t n);

/* A DS (is_integer false) or IS (true) value's text as a JSON number; NULL when the text is not
 * one (the caller then keeps it as a string) or is longer than 63 bytes. */
json_t *ahl_dicomjson_number(bool is_integer, const char *s, size_t n);

#endif /* AHL_DICOM_DICOMJSON_H */
