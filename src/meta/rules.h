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
 * UID. 0, or AHL_EINVAL with err set (type ValidationException). */
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
 * rules print as "VR IS expects <description>". JSON null (an empty value) fits every VR. */
const char *ahl_rules_vr_problem(const char *vr, const json_t *v);

#endif /* AHL_META_RULES_H */
