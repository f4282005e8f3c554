/* The outbox rows of HealthImaging's events (events.h, docs/events.md): the detail of each kind
 * of resource, as JSON text written by ahl_json_write_string for every value, and the state each
 * detail type names, taken from the one table of states (states.h). */
#include "meta/events.h"
#include "meta/engine_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/text.h"
#include "json/json.h"
#include "meta/states.h"
#include "base/banned.h"

static const char *const type_names[] = {
#define AHL__EVENT_NAME(name, text) text,
    AHL_EVENT_TYPE_MAP(AHL__EVENT_NAME)
#undef AHL__EVENT_NAME
};

const char *ahl_event_type_name(enum ahl_event_type t)
{
    return (int)t >= 0 && t < AHL_EVENT_TYPE_COUNT ? type_names[t] : NULL;
}

/* What each detail type is about and the state it names, indexed by type: the data store's
 * status, the job's status, or the image set's state and workflow status (the text of states.h). */
enum kind { K_DATASTORE, K_JOB, K_SET };
static const struct {
    enum kind kind;
    int status; /* enum ahl_datastore_status, ahl_job_status or ahl_workflow_status */
    enum ahl_imageset_state state;
} kinds[AHL_EVENT_TYPE_COUNT] = {
    [AHL_EVENT_DATASTORE_CREATING] = {K_DATASTORE, AHL_DATASTORE_CREATING, 0},
    [AHL_EVENT_DATASTORE_CREATED] = {K_DATASTORE, AHL_DATASTORE_ACTIVE, 0},
    [AHL_EVENT_DATASTORE_CREATION_FAILED] = {K_DATASTORE, AHL_DATASTORE_CREATE_FAILED, 0},
    [AHL_EVENT_DATASTORE_DELETING] = {K_DATASTORE, AHL_DATASTORE_DELETING, 0},
    [AHL_EVENT_DATASTORE_DELETED] = {K_DATASTORE, AHL_DATASTORE_DELETED, 0},
    [AHL_EVENT_IMPORT_JOB_SUBMITTED] = {K_JOB, AHL_JOB_SUBMITTED, 0},
    [AHL_EVENT_IMPORT_JOB_IN_PROGRESS] = {K_JOB, AHL_JOB_IN_PROGRESS, 0},
    [AHL_EVENT_IMPORT_JOB_COMPLETED] = {K_JOB, AHL_JOB_COMPLETED, 0},
    [AHL_EVENT_IMPORT_JOB_FAILED] = {K_JOB, AHL_JOB_FAILED, 0},
    [AHL_EVENT_IMAGE_SET_CREATED] = {K_SET, AHL_WORKFLOW_CREATED, AHL_IMAGESET_ACTIVE},
    [AHL_EVENT_IMAGE_SET_COPYING] = {K_SET, AHL_WORKFLOW_COPYING, AHL_IMAGESET_LOCKED},
    [AHL_EVENT_IMAGE_SET_COPYING_READ_ONLY] = {K_SET, AHL_WORKFLOW_COPYING_WITH_READ_ONLY_ACCESS,
                                               AHL_IMAGESET_LOCKED},
    [AHL_EVENT_IMAGE_SET_COPIED] = {K_SET, AHL_WORKFLOW_COPIED, AHL_IMAGESET_ACTIVE},
    [AHL_EVENT_IMAGE_SET_COPY_FAILED] = {K_SET, AHL_WORKFLOW_COPY_FAILED, AHL_IMAGESET_ACTIVE},
    [AHL_EVENT_IMAGE_SET_UPDATING] = {K_SET, AHL_WORKFLOW_UPDATING, AHL_IMAGESET_LOCKED},
    [AHL_EVENT_IMAGE_SET_UPDATED] = {K_SET, AHL_WORKFLOW_UPDATED, AHL_IMAGESET_ACTIVE},
    [AHL_EVENT_IMAGE_SET_UPDATE_FAILED] = {K_SET, AHL_WORKFLOW_UPDATE_FAILED, AHL_IMAGESET_ACTIVE},
    [AHL_EVENT_IMAGE_SET_DELETING] = {K_SET, AHL_WORKFLOW_DELETING, AHL_IMAGESET_LOCKED},
    [AHL_EVENT_IMAGE_SET_DELETED] = {K_SET, AHL_WORKFLOW_DELETED, AHL_IMAGESET_DELETED},
};

/* AHL_EINVAL when t is not an event of kind k; 1 when the outbox is off (nothing to write). */
static int check(struct ahl_store_tx *tx, enum ahl_event_type t, enum kind k)
{
    if ((int)t < 0 || t >= AHL_EVENT_TYPE_COUNT || kinds[t].kind != k)
        return AHL_EINVAL;
    return ahl_store_outbox_on(tx->store) ? 0 : 1;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Appends ,"key":"value" (the first member without the comma). */
static int member(struct ahl_buf *b, const char *key, const char *value)
{
    int rc = ahl_buf_adds(b, b->len > 1 ? ",\"" : "\"");
    if (rc == 0)
        rc = ahl_buf_adds(b, key);
    if (rc == 0)
        rc = ahl_buf_adds(b, "\":");
    if (rc == 0)
        rc = ahl_json_write_string(value, strlen(value), b);
    return rc;
}

/* A UUID (version 4, RFC 9562) from 16 random bytes. */
static int make_uuid(char out[37])
{
    uint8_t r[16];
    char hex[33];
    int rc = ahl_random_bytes(r, sizeof r);
    if (rc < 0)
        return rc;
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    ahl_hex_encode(r, sizeof r, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return 0;
}

/* Writes the row of an event about resource: its detail is imagingVersion, datastoreId, then the
 * n (key, value) pairs of kv, in that order. */
static int put(struct ahl_store_tx *tx, enum ahl_event_type t, const char *resource,
               const char *datastore_id, const char *const kv[][2], size_t n)
{
    static __thread struct ahl_event_rec rec; /* 4 KiB: kept off the callers' stacks */
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_EVENT_DETAIL_MAX);
    int rc = ahl_buf_addc(&b, '{');
    if (rc == 0)
        rc = member(&b, "imagingVersion", AHL_EVENT_IMAGING_VERSION);
    if (rc == 0)
        rc = member(&b, "datastoreId", datastore_id);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = member(&b, kv[i][0], kv[i][1]);
    if (rc == 0)
        rc = ahl_buf_addc(&b, '}');
    memset(&rec, 0, sizeof rec);
    if (rc == 0)
        rc = make_uuid(rec.id);
    rec.time_ms = ahl_now_ms();
    if (rc == 0 &&
        (ahl_str_copy(rec.detail_type, sizeof rec.detail_type, ahl_event_type_name(t)) < 0 ||
         ahl_str_copy(rec.resource, sizeof rec.resource, resource) < 0 ||
         ahl_str_copy(rec.detail, sizeof rec.detail, b.data) < 0))
        rc = AHL_EINTERNAL;
    if (rc == 0)
        rc = ahl_store_event_put(tx, &rec);
    ahl_buf_release(&b);
    return rc;
}

int ahl_event_datastore(struct ahl_store_tx *tx, enum ahl_event_type t,
                        const struct ahl_datastore_rec *ds)
{
    int rc = check(tx, t, K_DATASTORE);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    char resource[64];
    snprintf(resource, sizeof resource, "datastore/%s", ds->id);
    const char *const kv[][2] = {
        {"datastoreName", ds->name},
        {"datastoreStatus", ahl_datastore_status_name(kinds[t].status)},
    };
    return put(tx, t, resource, ds->id, kv, COUNT(kv));
}

int ahl_event_job(struct ahl_store_tx *tx, enum ahl_event_type t, const struct ahl_job_rec *job)
{
    int rc = check(tx, t, K_JOB);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    char resource[64];
    snprintf(resource, sizeof resource, "datastore/%s", job->datastore_id);
    const char *const kv[][2] = {
        {"jobId", job->id},
        {"jobName", job->name},
        {"jobStatus", ahl_job_status_name(kinds[t].status)},
        {"inputS3Uri", job->input_uri},
        {"outputS3Uri", job->output_uri},
    };
    return put(tx, t, resource, job->datastore_id, kv, COUNT(kv));
}

int ahl_event_imageset(struct ahl_store_tx *tx, enum ahl_event_type t, const char *datastore_id,
                       const char *imageset_id)
{
    int rc = check(tx, t, K_SET);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    char resource[128];
    snprintf(resource, sizeof resource, "datastore/%s/imageset/%s", datastore_id, imageset_id);
    const char *const kv[][2] = {
        {"imageSetId", imageset_id},
        {"imageSetState", ahl_imageset_state_name(kinds[t].state)},
        {"imageSetWorkflowStatus", ahl_workflow_status_name(kinds[t].status)},
    };
    return put(tx, t, resource, datastore_id, kv, COUNT(kv));
}

int ahl__events_imageset(struct ahl_store_tx *tx, enum ahl_event_type first,
                         enum ahl_event_type last, const struct ahl_imageset_rec *set,
                         struct ahl_err *err)
{
    int rc = 0;
    if (first != AHL_EVENT_TYPE_COUNT)
        rc = ahl_event_imageset(tx, first, set->datastore_id, set->id);
    if (rc == 0)
        rc = ahl_event_imageset(tx, last, set->datastore_id, set->id);
    return rc < 0 ? ahl_meta_store_fail(err, rc, "writing the event") : 0;
}
