/* The rules of UpdateImageSetMetadata for single attributes: what may be set or removed at which
 * level, with or without force, and whether a value fits its VR. Pure functions: they look at the
 * attribute, its new value and (for set) its current value, never at storage.
 *
 * The update engine walks the decoded updatableAttributes / removableAttributes documents and calls
 * these for every attribute it is about to change; a non-zero return stops the whole update, so
 * nothing is written. Messages name the path, e.g.
 *   "Study.Series['1.2.3'].DICOM.SeriesNumber: VR IS expects an integer string".
 *
 * Keys are DICOM keywords, or 8 upper-case hex digits for private and unknown tags (whose VR comes
 * from the DICOMVRs object beside DICOM; without force a private tag needs one).
 *
 * The rules, in the order they are checked (AWS's "DICOM metadata constraints" page, with the
 * ahilite choices where it is silent or ambiguous named by their docs/decisions.md entries):
 *
 *  1. Never, even with force: the generated keys of ahl_rules_is_generated() (SchemaVersion,
 *     DatastoreID, ImageSetID, PixelData and its float variants, ImageFrames, Checksum,
 *     ChecksumType, Width, Height, Min/MaxPixelValue, FrameSizeInBytes, StoredTransferSyntaxUID).
 *     (docs/decisions.md#generated-keys-and-pixel-data) PixelData is here although AWS lists it
 *     under force too: ahilite keeps pixel data only as frames, so there is nothing a forced
 *     PixelData value could change.
 *  2. Never: a key that is neither a dictionary keyword nor 8 upper-case hex digits ("unknown
 *     attribute"); a public attribute written in hex instead of its keyword (it would be a second
 *     key for the same attribute; members of repeating groups other than the first, e.g. 6002xxxx,
 *     have no keyword and stay hex); the keyword "PrivateCreator" (a range, not an attribute);
 *     group lengths (gggg,0000), item and delimiter tags.
 *  3. Never: an attribute at a level other than its own (ahl_level_of_tag; private and unknown
 *     tags belong to the Instance level). So (docs/decisions.md#private-tags-above-instance)
 *     private tags at Patient, Study or Series level can be neither set nor removed, with or
 *     without force: import never puts them there, and the doc's wording about them ("unless the
 *     update constraint applies to both ...") is unclear; force is documented only for
 *     instance-level private tags.
 *  4. With aws_primary_rules && is_primary (docs/decisions.md#primary-rules): no Patient- or
 *     Series-level set or remove at all, and force has no effect ("force is meant for non-primary
 *     sets"), which also rules out forced UID changes. Messages then say that force does not apply.
 *  5. Only with force: instance-level private tags (set or remove); unknown public tags (even
 *     group, not in the dictionary: "not valid per the DICOM standard"); the File Meta
 *     (docs/decisions.md#file-meta-needs-force) group 0002 (TransferSyntaxUID,
 *     MediaStorageSOPInstanceUID...): it describes how the original file was encoded, so changing
 *     it is a deliberate act.
 *  6. StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, StudyID: setting the current value
 *     (trailing padding ignored) is always allowed (a no-op); a change needs force.
 *     (docs/decisions.md#uid-changes) A forced change of one of the three UIDs must still be a
 *     valid UID string, since the engine re-keys the node by it; a forced StudyID may be any value.
 *     The three UIDs can never be removed (they identify the node; remove the series or instance
 *     instead); removing StudyID needs force.
 *  7. Values (set only). JSON null is the empty value and fits every VR. Booleans and bare
 *     objects are never DICOM values. The VR is the dictionary's; DICOMVRs may pick one of the
 *     alternatives the dictionary allows ("US or SS"), and a contradicting DICOMVRs entry is
 *     rejected without force; a DICOMVRs entry that is not a VR is always rejected. Private and
 *     unknown tags take their VR from DICOMVRs; with none, the value is not VR-checked (force is
 *     required for them anyway).
 *     - Sequences (VR SQ, or an array holding objects) need force; forced sequences must still be
 *       arrays of item objects, nested at most AHL_RULES_MAX_SQ_DEPTH deep. Removing an SQ
 *       attribute also needs force (docs/decisions.md#sequences-need-force).
 *     - Multi-valued (docs/decisions.md#multi-valued): an array of more than one value, or a string
 *       holding a backslash for a VR in which the backslash separates values (AE AS CS DA DS DT IS
 *       LO PN SH TM UC UI), needs force. A one-element array is the document's normal form for an
 *       attribute whose dictionary VM is not 1 ("SoftwareVersions":["3.1"]) and is accepted there;
 *       for a VM 1 attribute it is a VR mismatch. A scalar for a VM 1-n attribute is accepted and
 *       stored as given. Removing a multi-valued attribute needs no force (removal matches on the
 *       key).
 *     - VR fit (needs force to bypass): text VRs are JSON strings (trailing spaces, and NULs for
 *       UI, are padding); DA YYYYMMDD and a real date; TM HH[MM[SS[.F{1-6}]]]; DT
 *       YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX] (<= 26); IS integer string <= 12 chars in int32 range;
 *       DS decimal string <= 16 chars, finite; UI <= 64 chars, digits and dots, no empty or
 *       zero-led component; PN <= 3 '='-groups of <= 5 '^'-components and <= 64 characters each;
 *       CS <= 16 of A-Z 0-9 space _; AS nnnD/W/M/Y; AE <= 16 printable ASCII; SH <= 16 and
 *       LO <= 64 characters without control characters but ESC; ST <= 1024, LT <= 10240, UT any
 *       length (CR LF FF TAB ESC allowed); UC any length; UR printable ASCII without spaces or
 *       backslashes; AT 8 hex digits; US SS UL SL UV SV JSON integers in range; FL FD JSON numbers
 *       (FL within single-precision range); OB OD OF OL OV OW UN strict base64 whose decoded
 *       length is a multiple of the word size.
 */
#ifndef AHL_META_RULES_H
#define AHL_META_RULES_H

#include <stdbool.h>

#include <jansson.h>

#include "base/err.h"
#include "dicom/levels.h"

struct ahl_rules_opts {
    bool force;             /* the request's force=true */
    bool aws_primary_rules; /* server option: today's AWS restrictions on primary image sets */
    bool is_primary;        /* the image set being changed is primary */
};

/* May key be set to value at level? path is the JSON path of the DICOM object for messages
 * ("Patient.DICOM"); vrs is the DICOMVRs object given beside it (may be NULL); current is the
 * attribute's current value (NULL when absent), used to allow a "change" to the same value of a
 * UID. 0, or AHL_EINVAL with err set (a message naming the attribute). */
int ahl_rules_check_set(enum ahl_level level, const char *path, const char *key,
                        const json_t *value, const json_t *vrs, const json_t *current,
                        const struct ahl_rules_opts *opts, struct ahl_err *err);

/* May key be removed at level? Same conventions. */
int ahl_rules_check_remove(enum ahl_level level, const char *path, const char *key,
                           const struct ahl_rules_opts *opts, struct ahl_err *err);

/* Keys of a node (besides DICOM/DICOMVRs/Series/Instances) that can never be written by an
 * update: SchemaVersion, DatastoreID, ImageSetID, ImageFrames, StoredTransferSyntaxUID,
 * ChecksumType, ... true when key is one of them. */
bool ahl_rules_is_generated(const char *key);

/* Deepest nesting of sequences a forced update may carry. */
#define AHL_RULES_MAX_SQ_DEPTH 16

/* true when vr is one of the 34 two-letter VRs of PS3.5 (upper case). */
bool ahl_rules_is_vr(const char *vr);
/* Does the single value v (a JSON scalar, or null) fit vr? NULL when it does, else a static
 * description of what vr expects ("an integer string (at most 12 characters, ...)"), which the
 * rules print as "VR IS expects <description>". JSON null (an empty value) fits every VR; a
 * backslash never fits a VR that uses it to separate values. */
const char *ahl_rules_vr_problem(const char *vr, const json_t *v);

#endif /* AHL_META_RULES_H */
