/* The one table of state and status names (states.h). */
#include "meta/states.h"

#include <string.h>

#include "base/err.h"
#include "base/text.h"
#include "store/store.h"
#include "base/banned.h"

#define AHL__STATE_TEXT(name) #name,
static const char *const datastore_names[] = {AHL_DATASTORE_STATUS_MAP(AHL__STATE_TEXT)};
static const char *const imageset_names[] = {AHL_IMAGESET_STATE_MAP(AHL__STATE_TEXT)};
static const char *const workflow_names[] = {AHL_WORKFLOW_STATUS_MAP(AHL__STATE_TEXT)};
static const char *const job_names[] = {AHL_JOB_STATUS_MAP(AHL__STATE_TEXT)};
#undef AHL__STATE_TEXT

/* Every name fits the record field that stores it, so copying one in cannot fail. */
#define AHL__FITS(name) \
    _Static_assert(sizeof #name <= FIELD, #name " does not fit its record field");
#define FIELD sizeof(((struct ahl_datastore_rec *)0)->status)
AHL_DATASTORE_STATUS_MAP(AHL__FITS)
#undef FIELD
#define FIELD sizeof(((struct ahl_imageset_rec *)0)->state)
AHL_IMAGESET_STATE_MAP(AHL__FITS)
#undef FIELD
#define FIELD sizeof(((struct ahl_version_rec *)0)->state)
AHL_IMAGESET_STATE_MAP(AHL__FITS)
#undef FIELD
#define FIELD sizeof(((struct ahl_imageset_rec *)0)->workflow_status)
AHL_WORKFLOW_STATUS_MAP(AHL__FITS)
#undef FIELD
#define FIELD sizeof(((struct ahl_version_rec *)0)->workflow_status)
AHL_WORKFLOW_STATUS_MAP(AHL__FITS)
#undef FIELD
#define FIELD sizeof(((struct ahl_job_rec *)0)->status)
AHL_JOB_STATUS_MAP(AHL__FITS)
#undef FIELD
#undef AHL__FITS

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "";
}

static int parse(const char *const *names, size_t n, const char *text)
{
    for (size_t i = 0; text && i < n; i++)
        if (!strcmp(names[i], text))
            return (int)i;
    return AHL_EPARSE;
}

const char *ahl_datastore_status_name(enum ahl_datastore_status s)
{
    return name_of(datastore_names, COUNT(datastore_names), (int)s);
}

const char *ahl_imageset_state_name(enum ahl_imageset_state s)
{
    return name_of(imageset_names, COUNT(imageset_names), (int)s);
}

const char *ahl_workflow_status_name(enum ahl_workflow_status s)
{
    return name_of(workflow_names, COUNT(workflow_names), (int)s);
}

const char *ahl_job_status_name(enum ahl_job_status s)
{
    return name_of(job_names, COUNT(job_names), (int)s);
}

int ahl_datastore_status_parse(const char *text)
{
    return parse(datastore_names, COUNT(datastore_names), text);
}

int ahl_imageset_state_parse(const char *text)
{
    return parse(imageset_names, COUNT(imageset_names), text);
}

int ahl_workflow_status_parse(const char *text)
{
    return parse(workflow_names, COUNT(workflow_names), text);
}

int ahl_job_status_parse(const char *text)
{
    return parse(job_names, COUNT(job_names), text);
}

/* The names fit (checked above), so a failed copy is a broken invariant. */
static void set_field(char *dst, size_t cap, const char *name)
{
    if (ahl_str_copy(dst, cap, name) < 0)
        AHL_BUG("state name %s does not fit a field of %zu bytes", name, cap);
}

void ahl_datastore_rec_set_status(struct ahl_datastore_rec *r, enum ahl_datastore_status s)
{
    set_field(r->status, sizeof r->status, ahl_datastore_status_name(s));
}

void ahl_imageset_rec_set_state(struct ahl_imageset_rec *r, enum ahl_imageset_state s,
                                enum ahl_workflow_status w)
{
    set_field(r->state, sizeof r->state, ahl_imageset_state_name(s));
    set_field(r->workflow_status, sizeof r->workflow_status, ahl_workflow_status_name(w));
}

void ahl_version_rec_set_state(struct ahl_version_rec *r, enum ahl_imageset_state s,
                               enum ahl_workflow_status w)
{
    set_field(r->state, sizeof r->state, ahl_imageset_state_name(s));
    set_field(r->workflow_status, sizeof r->workflow_status, ahl_workflow_status_name(w));
}

void ahl_job_rec_set_status(struct ahl_job_rec *r, enum ahl_job_status s)
{
    set_field(r->status, sizeof r->status, ahl_job_status_name(s));
}
