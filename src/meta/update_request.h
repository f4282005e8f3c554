/* The DICOMUpdates request of UpdateImageSetMetadata: parsing the decoded updatableAttributes and
 * removableAttributes blobs, validating their structure, and walking them through the attribute
 * rules of rules.h against the image set's current document.
 *
 * A blob is a JSON object shaped like the metadata document (docs/metadata.md#the-blobs),
 * holding only what changes:
 *   {"SchemaVersion":1.1,                         number 1.1 or string "1.1", optional
 *    "Patient":{"DICOM":{..},"DICOMVRs":{..}},
 *    "Study":{"DICOM":{..},"DICOMVRs":{..},
 *             "Series":{"<SeriesInstanceUID>":{"DICOM":{..},"DICOMVRs":{..},
 *                        "Instances":{"<SOPInstanceUID>":{"DICOM":{..},"DICOMVRs":{..}}}}}}}
 * Any other key is an error naming its path ("updatableAttributes.Study.Foo: unknown key;
 * expected DICOM, DICOMVRs or Series"); generated keys (ImageFrames, DatastoreID, ...) get the
 * "can never be updated" message. DICOM and DICOMVRs are objects; DICOMVRs values are strings
 * and, in updatableAttributes, name attributes given in the DICOM object beside them. Series and
 * Instances keys are UIDs: 1..256 printable ASCII characters without quotes or backslashes (they
 * appear in messages as Series['<uid>']). In removableAttributes a Series or Instance given as
 * {} removes that node; attribute values there are ignored (removal matches on keys,
 * docs/decisions.md#removal-by-key). Duplicate keys are rejected
 * (docs/decisions.md#duplicate-json-keys), so what the client meant is never a guess.
 *
 * Limits: each blob must be 1..max_bytes bytes (0 selects AHL_UPDATES_DEFAULT_MAX_BYTES, AWS's
 * default quota of 10,000): larger is AHL_EQUOTA (a quota, not a malformed request) with a message
 * naming the limit; nesting deeper than AHL_UPDATES_MAX_DEPTH is refused before the rules see it.
 *
 * Calling sequence (the engine, per request):
 *     struct ahl_updates u;
 *     rc = ahl_updates_parse(upd, upd_len, rem, rem_len, max_bytes, &u, &err);   // structure
 *     rc = ahl_updates_check(&u, current_doc, &rules_opts, &err);                // every rule
 *     ... apply u.updatable / u.removable ...
 *     ahl_updates_release(&u);
 */
#ifndef AHL_META_UPDATE_REQUEST_H
#define AHL_META_UPDATE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/err.h"
#include "meta/rules.h"

#define AHL_UPDATES_DEFAULT_MAX_BYTES 10000
/* Deepest JSON nesting accepted in a blob: the document tree is 7 levels to an attribute, and a
 * forced sequence may nest AHL_RULES_MAX_SQ_DEPTH items (2 levels each) below that. */
#define AHL_UPDATES_MAX_DEPTH (8 + 2 * AHL_RULES_MAX_SQ_DEPTH + 1)
/* Longest Series / Instances key (the import limit of SeriesInstanceUID and SOPInstanceUID). */
#define AHL_UPDATES_MAX_UID 256

struct ahl_updates {
    json_t *updatable; /* validated object, or NULL when the blob was absent */
    json_t *removable; /* validated object, or NULL when the blob was absent */
};

/* Parses and validates one blob. which is "updatableAttributes" or "removableAttributes" (it
 * selects the removal form and prefixes messages). *out receives a new reference. 0, AHL_EQUOTA
 * (too big), AHL_EINVAL (not JSON, not an object, bad structure), AHL_ENOMEM. */
int ahl_updates_parse_blob(const char *which, const char *blob, size_t len, size_t max_bytes,
                           json_t **out, struct ahl_err *err);

/* Validates the structure of an already parsed blob (same rules and messages as above). */
int ahl_updates_validate(const char *which, const json_t *doc, struct ahl_err *err);

/* Parses both blobs (either may be NULL: absent). At least one must be given. On failure
 * nothing is held by out. */
int ahl_updates_parse(const char *updatable, size_t updatable_len, const char *removable,
                      size_t removable_len, size_t max_bytes, struct ahl_updates *out,
                      struct ahl_err *err);

/* Applies the attribute rules to every attribute of both blobs, and (when current is given, the
 * image set's current document) checks that every Series and Instance they name exists there,
 * passing each attribute's current value to ahl_rules_check_set so that restating a UID is
 * allowed. Removals are checked first, then updates; the first problem is reported. */
int ahl_updates_check(const struct ahl_updates *u, const json_t *current,
                      const struct ahl_rules_opts *opts, struct ahl_err *err);

/* Drops both documents; u may be used again. */
void ahl_updates_release(struct ahl_updates *u);

#endif /* AHL_META_UPDATE_REQUEST_H */
