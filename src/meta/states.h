/* The states and statuses of the records the store keeps (data stores, image sets and their
 * versions, import jobs), as enums, and their one text form.
 *
 * The text form is the service model's enum value (DatastoreStatus, ImageSetState,
 * ImageSetWorkflowStatus, JobStatus). The store keeps it as text, so existing data directories
 * hold exactly these words, and the API reports stored values as they are. This table is the only
 * place that spells them: code compares and writes states through the enums.
 *
 *     if (ahl_imageset_state_parse(set.state) == AHL_IMAGESET_DELETED) ...
 *     rc = ahl_str_copy(set.state, sizeof set.state, ahl_imageset_state_name(AHL_IMAGESET_ACTIVE));
 *
 * Every name fits the record fields of store.h (checked when this module is compiled), so such a
 * copy cannot fail. A _parse of text that is none of the kind's values (a damaged or foreign row)
 * returns AHL_EPARSE, which no enum value equals. */
#ifndef AHL_META_STATES_H
#define AHL_META_STATES_H

#include "store/store.h"

/* clang-format off */
#define AHL_DATASTORE_STATUS_MAP(X) X(CREATING) X(CREATE_FAILED) X(ACTIVE) X(DELETING) X(DELETED)
#define AHL_IMAGESET_STATE_MAP(X) X(ACTIVE) X(LOCKED) X(DELETED)
#define AHL_WORKFLOW_STATUS_MAP(X)                                                                 \
    X(CREATED) X(COPIED) X(COPYING) X(COPYING_WITH_READ_ONLY_ACCESS) X(COPY_FAILED) X(UPDATING)  \
    X(UPDATING_FOR_STUDY_CONSISTENCY) X(UPDATED) X(UPDATE_FAILED) X(DELETING) X(DELETED)         \
    X(IMPORTING) X(IMPORTED) X(IMPORT_FAILED)
#define AHL_JOB_STATUS_MAP(X) X(SUBMITTED) X(IN_PROGRESS) X(COMPLETED) X(FAILED)
/* clang-format on */

enum ahl_datastore_status {
#define AHL__STATE_ENUM(name) AHL_DATASTORE_##name,
    AHL_DATASTORE_STATUS_MAP(AHL__STATE_ENUM)
#undef AHL__STATE_ENUM
};

enum ahl_imageset_state {
#define AHL__STATE_ENUM(name) AHL_IMAGESET_##name,
    AHL_IMAGESET_STATE_MAP(AHL__STATE_ENUM)
#undef AHL__STATE_ENUM
};

enum ahl_workflow_status {
#define AHL__STATE_ENUM(name) AHL_WORKFLOW_##name,
    AHL_WORKFLOW_STATUS_MAP(AHL__STATE_ENUM)
#undef AHL__STATE_ENUM
};

enum ahl_job_status {
#define AHL__STATE_ENUM(name) AHL_JOB_##name,
    AHL_JOB_STATUS_MAP(AHL__STATE_ENUM)
#undef AHL__STATE_ENUM
};

/* The text of a value; "" for a value outside the enum. */
const char *ahl_datastore_status_name(enum ahl_datastore_status s);
const char *ahl_imageset_state_name(enum ahl_imageset_state s);
const char *ahl_workflow_status_name(enum ahl_workflow_status s);
const char *ahl_job_status_name(enum ahl_job_status s);

/* The value a text names (exactly, case-sensitive), or AHL_EPARSE. text may be NULL. */
int ahl_datastore_status_parse(const char *text);
int ahl_imageset_state_parse(const char *text);
int ahl_workflow_status_parse(const char *text);
int ahl_job_status_parse(const char *text);

/* Sets a record's state and status fields (the names always fit). */
void ahl_datastore_rec_set_status(struct ahl_datastore_rec *r, enum ahl_datastore_status s);
void ahl_imageset_rec_set_state(struct ahl_imageset_rec *r, enum ahl_imageset_state s,
                                enum ahl_workflow_status w);
void ahl_version_rec_set_state(struct ahl_version_rec *r, enum ahl_imageset_state s,
                               enum ahl_workflow_status w);
void ahl_job_rec_set_status(struct ahl_job_rec *r, enum ahl_job_status s);

#endif /* AHL_META_STATES_H */
