/* Reading the keys and VRs of a HealthImaging metadata document's DICOM maps back, for the two
 * writers of DICOM from a document: the DICOM JSON of DICOMweb (hidoc.h) and the Part-10 writer
 * (p10write.h). One rule for both, so a retrieved file and its metadata never disagree on a VR.
 *
 * A map's key is a PS3.6 keyword or 8 hex digits (the normalizer writes tags it cannot name so,
 * upper case; either case is read). The VR of an attribute is, in order: its DICOMVRs entry (two
 * letters); the dictionary's; UN for a tag the dictionary does not know. Where the dictionary
 * allows several, the value decides:
 *   - a string (base64): "OB or OW" (waveform, overlay and LUT data) is OW unless the same map's
 *     WaveformBitsAllocated is 8 or less, as explicit-VR writers record it; otherwise the first
 *     byte VR (O?, UN) offered;
 *   - an object (an item): SQ;
 *   - numbers: "US or SS" is SS when a value is negative, or when PixelRepresentation is 1 and
 *     every value fits SS; else US. Otherwise the first binary number VR offered.
 */
#ifndef AHL_DICOM_DOCVR_H
#define AHL_DICOM_DOCVR_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dicom/dict.h"

/* true, with the tag in *tag, when key is 8 hex digits and nothing more. */
bool ahl_dicom_hex_key(const char *key, uint32_t *tag);

/* The first non-null member of a document value (the value itself, or an array's), or NULL. */
const json_t *ahl_dicom_first_value(const json_t *v);

/* The VR of the attribute tag whose value is value in map (see above) into out. given: its
 * DICOMVRs entry, or NULL. signed_pixels: the instance's PixelRepresentation is 1. */
void ahl_dicom_value_vr(uint32_t tag, const char *given, const json_t *map, const json_t *value,
                        bool signed_pixels, char out[3]);

#endif /* AHL_DICOM_DOCVR_H */
