/* The events HealthImaging sends to EventBridge, as rows of the store's outbox (docs/events.md).
 *
 * Every state change ahilite commits writes its events in the same write transaction, through
 * these calls, so that an event exists exactly when its change does (a rolled-back transaction
 * leaves none) and the outbox's order is commit order. The dispatcher (src/events) delivers them
 * later, wrapped in EventBridge's envelope. With the store's outbox disabled
 * (ahl_store_outbox_enable) every call returns 0 at once, building nothing.
 *
 * A detail type names the state the resource reaches (AWS's table of HealthImaging events), and
 * the detail carries that state: "Image Set Updating" says LOCKED / UPDATING, "Image Set Updated"
 * ACTIVE / UPDATED. ahilite completes every change in one transaction, so the transient states it
 * never stores (CREATING, DELETING, UPDATING, COPYING...) are written just before their end state,
 * in AWS's order, in the same transaction.
 *
 *     ahl_event_imageset(tx, AHL_EVENT_IMAGE_SET_UPDATING, ds, id);
 *     ahl_event_imageset(tx, AHL_EVENT_IMAGE_SET_UPDATED, ds, id);
 *
 * Errors: the store's (the caller rolls back), AHL_EINTERNAL for a field too long for the row.
 */
#ifndef AHL_META_EVENTS_H
#define AHL_META_EVENTS_H

#include "store/store.h"

/* clang-format off */
#define AHL_EVENT_TYPE_MAP(X)                                                                     \
    X(DATASTORE_CREATING, "Data Store Creating")                                                  \
    X(DATASTORE_CREATED, "Data Store Created")                                                    \
    X(DATASTORE_CREATION_FAILED, "Data Store Creation Failed")                                    \
    X(DATASTORE_DELETING, "Data Store Deleting")                                                  \
    X(DATASTORE_DELETED, "Data Store Deleted")                                                    \
    X(IMPORT_JOB_SUBMITTED, "Import Job Submitted")                                               \
    X(IMPORT_JOB_IN_PROGRESS, "Import Job In Progress")                                           \
    X(IMPORT_JOB_COMPLETED, "Import Job Completed")                                               \
    X(IMPORT_JOB_FAILED, "Import Job Failed")                                                     \
    X(IMAGE_SET_CREATED, "Image Set Created")                                                     \
    X(IMAGE_SET_COPYING, "Image Set Copying")                                                     \
    X(IMAGE_SET_COPYING_READ_ONLY, "Image Set Copying With Read Only Access")                     \
    X(IMAGE_SET_COPIED, "Image Set Copied")                                                       \
    X(IMAGE_SET_COPY_FAILED, "Image Set Copy Failed")                                             \
    X(IMAGE_SET_UPDATING, "Image Set Updating")                                                   \
    X(IMAGE_SET_UPDATED, "Image Set Updated")                                                     \
    X(IMAGE_SET_UPDATE_FAILED, "Image Set Update Failed")                                         \
    X(IMAGE_SET_DELETING, "Image Set Deleting")                                                   \
    X(IMAGE_SET_DELETED, "Image Set Deleted")
/* clang-format on */

enum ahl_event_type {
#define AHL__EVENT_ENUM(name, text) AHL_EVENT_##name,
    AHL_EVENT_TYPE_MAP(AHL__EVENT_ENUM)
#undef AHL__EVENT_ENUM
        AHL_EVENT_TYPE_COUNT
};

/* The detail-type ("Image Set Updated"); NULL for a value out of range. */
const char *ahl_event_type_name(enum ahl_event_type t);

/* The version of the detail's shape, "imagingVersion" (AWS's examples: "1.0"). */
#define AHL_EVENT_IMAGING_VERSION "1.0"

/* A data store event: detail {imagingVersion, datastoreId, datastoreName, datastoreStatus}, the
 * status the type names. AHL_EINVAL for a type of another resource. */
int ahl_event_datastore(struct ahl_store_tx *tx, enum ahl_event_type t,
                        const struct ahl_datastore_rec *ds);
/* An import job event: detail {imagingVersion, datastoreId, jobId, jobName, jobStatus,
 * inputS3Uri, outputS3Uri}, the status the type names. */
int ahl_event_job(struct ahl_store_tx *tx, enum ahl_event_type t, const struct ahl_job_rec *job);
/* An image set event: detail {imagingVersion, datastoreId, imageSetId, imageSetState,
 * imageSetWorkflowStatus}, the state and status the type names. */
int ahl_event_imageset(struct ahl_store_tx *tx, enum ahl_event_type t, const char *datastore_id,
                       const char *imageset_id);

#endif /* AHL_META_EVENTS_H */
