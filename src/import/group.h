/* Import grouping: which image set an imported instance belongs to, decided the way HealthImaging
 * does (docs/import.md#grouping-primary-and-non-primary-image-sets). Pure functions over normalized
 * documents; the importer looks up candidates in the store and calls these to decide.
 *
 * A normalized single-instance document (what the normalizer produces) is
 *   {"Patient":{"DICOM":{..}},
 *    "Study":{"DICOM":{..},"Series":{"<series uid>":{"DICOM":{..},"Instances":{"<sop>":{..}}}}}}
 * with exactly one series holding exactly one instance. A candidate is the document of an
 * existing primary image set (any number of series and instances; extra top-level keys such as
 * SchemaVersion are ignored).
 *
 * The decision:
 *   1. ahl_group_key() names the primary image set an instance would join: the SHA-256 of its
 *      StudyInstanceUID and SeriesInstanceUID. The importer keeps one primary set per key.
 *   2. ahl_group_compare() compares the instance with that primary set. The set is joined when
 *      they are consistent; on a conflict the instance goes to a non-primary image set, and the
 *      diff names the first conflicting attribute for the import warning.
 *      Consistent means:
 *        - the grouping elements agree: Study level StudyDate, AccessionNumber, PatientID,
 *          StudyInstanceUID, StudyID; Series level SeriesInstanceUID, SeriesNumber. An absent
 *          element counts as empty, so absent vs "A1" is a conflict
 *          (docs/decisions.md#absent-grouping-element);
 *        - every other Patient-, Study- and Series-level attribute present on both sides has the
 *          same value ("the normalization is consistent"). An attribute present on one side only
 *          is not a conflict: the import merges it in
 *          (docs/decisions.md#one-sided-attributes-merge);
 *        - the candidate holds the instance's series (an image set is one series).
 *      Values compare as JSON, except that trailing spaces (and NULs) of strings are padding, so
 *      "1 " equals "1", and null equals "" (both are the empty value). Instance-level attributes
 *      are never compared: re-importing a SOP instance replaces it.
 *   3. ahl_group_fingerprint() hashes the normalized grouping elements: two instances with equal
 *      fingerprints agree on all of them (a cheap pre-check across many instances of one job).
 *   4. ahl_group_check_limits() enforces the per-element maximum lengths HealthImaging applies at
 *      import (PatientName 256, ..., NumberOfStudyRelatedInstances <= 1,000,000).
 */
#ifndef AHL_IMPORT_GROUP_H
#define AHL_IMPORT_GROUP_H

#include <jansson.h>

#include "base/err.h"
#include "dicom/levels.h"

#define AHL_GROUP_KEY_LEN 64 /* hex digits of a key or fingerprint */

enum ahl_group_result {
    AHL_GROUP_CONSISTENT = 0,
    AHL_GROUP_CONFLICT = 1,
};

/* The first conflict found by ahl_group_compare. */
struct ahl_group_diff {
    enum ahl_level level; /* where the attribute lives */
    char attribute[72];   /* keyword or hex tag, "" when consistent */
    char candidate[96];   /* the primary set's value as JSON text (shortened with ...) */
    char instance[96];    /* the instance's value */
    char message[400];    /* "PatientID of the instance ("8") differs from the primary image
                             set ("7")", for the import warning */
};

/* Writes the grouping key of a single-instance document: 64 lowercase hex digits and a NUL.
 * AHL_EINVAL (the input's fault) when the document is not a single-instance document or
 * lacks StudyInstanceUID / SeriesInstanceUID ("DICOM attribute StudyInstanceUID does not
 * exist"). */
int ahl_group_key(const json_t *instance_doc, char out[AHL_GROUP_KEY_LEN + 1], struct ahl_err *err);

/* Writes the fingerprint of the seven grouping elements (normalized as ahl_group_compare
 * compares them) as 64 hex digits and a NUL. Same errors as ahl_group_key. */
int ahl_group_fingerprint(const json_t *instance_doc, char out[AHL_GROUP_KEY_LEN + 1],
                          struct ahl_err *err);

/* Compares an instance with a candidate primary set. AHL_GROUP_CONSISTENT, AHL_GROUP_CONFLICT
 * (diff, if not NULL, names the first conflicting attribute: grouping elements first, in the
 * order above, then Patient, Study and Series attributes in the instance's key order), or
 * AHL_EINVAL when instance_doc is not a single-instance document or candidate_doc is not an
 * image-set document. */
int ahl_group_compare(const json_t *candidate_doc, const json_t *instance_doc,
                      struct ahl_group_diff *diff, struct ahl_err *err);

/* Checks the import-time maximum lengths in every DICOM object of doc (any document shape):
 * PatientName, PatientID, StudyInstanceUID, StudyID, StudyDescription, AccessionNumber,
 * SOPInstanceUID, SeriesInstanceUID 256; PatientBirthDate 18, StudyDate 18, PatientSex 16,
 * StudyTime 28 (bytes of the value; an array's values count with one separator between them);
 * NumberOfStudyRelatedSeries and NumberOfStudyRelatedInstances at most 1,000,000.
 * 0, or AHL_EINVAL naming the attribute, its length and the limit. */
int ahl_group_check_limits(const json_t *doc, struct ahl_err *err);

#endif /* AHL_IMPORT_GROUP_H */
