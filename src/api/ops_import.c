/* StartDICOMImportJob, GetDICOMImportJob, ListDICOMImportJobs: the API side of import jobs.
 *
 * A job is a row in the store. StartDICOMImportJob checks the data store (it must exist and be
 * ACTIVE), records the job as SUBMITTED and hands it to the runner through the service's
 * job_submitted hook; the runner (src/jobs) moves it to IN_PROGRESS and COMPLETED or FAILED and
 * writes the outputs. Without a runner attached the job stays SUBMITTED.
 *
 * Idempotency: the job id is derived from the data store id and the clientToken, so a retried
 * start finds the job its first attempt recorded; the same token with other parameters is a
 * ConflictException.
 *
 * GetDICOMImportJob reports outputS3Uri as AWS does, expanded to the job's own output folder:
 * <outputS3Uri><datastoreId>-DicomImport-<jobId>/.
 *
 * The optional members the job runs with, importConfiguration (its metadata mappings checked here,
 * import/mapping.h) and inputOwnerAccountId, are kept as the job's options (one JSON object,
 * store.h) and take part in the idempotency check; GetDICOMImportJob echoes importConfiguration.
 * A data store with job_max_concurrent jobs SUBMITTED or IN_PROGRESS refuses another
 * (ServiceQuotaExceededException, docs/import.md#limits).
 */
#include "api/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/codec.h"
#include "import/mapping.h"
#include "meta/events.h"
#include "base/banned.h"

#define JOBS_DEFAULT_MAX 50
#define NOMEM(err) ahl_fail(err, AHL_ENOMEM, "out of memory")

/* The job's options as text (store.h, ahl_store_job_options_put): "" when the request has none.
 * *out is malloc'd. */
static int job_options_text(const json_t *in, char **out, struct ahl_err *err)
{
    const json_t *cfg = json_object_get(in, "importConfiguration");
    const char *owner = ahl_api_str(in, "inputOwnerAccountId");
    int rc;
    *out = NULL;
    if (cfg && (rc = ahl_mapping_check_config(
                    json_object_get(json_object_get(cfg, "dicomJsonMetadataImportConfiguration"),
                                    "dicomMetadataMappings"),
                    err)) < 0)
        return rc;
    json_t *o = json_object();
    if (!o || (cfg && json_object_set(o, "importConfiguration", (json_t *)cfg) < 0) ||
        (owner && json_object_set_new(o, "inputOwnerAccountId", json_string(owner)) < 0)) {
        json_decref(o);
        return NOMEM(err);
    }
    *out = json_object_size(o) ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : strdup("");
    json_decref(o);
    return *out ? 0 : NOMEM(err);
}

struct open_jobs {
    unsigned n;
};

static int count_job(void *ctx, const struct ahl_job_rec *j)
{
    (void)j;
    ((struct open_jobs *)ctx)->n++;
    return 0;
}

/* Refuses a new job while data store ds has limit jobs SUBMITTED or IN_PROGRESS. */
static int check_concurrent(struct ahl_store_tx *tx, const char *ds, unsigned limit,
                            struct ahl_err *err)
{
    struct open_jobs c = {0};
    int rc = ahl_store_job_list(tx, ds, "SUBMITTED", NULL, limit + 1, count_job, &c);
    if (rc == 0)
        rc = ahl_store_job_list(tx, ds, "IN_PROGRESS", NULL, limit + 1, count_job, &c);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "handling import job");
    if (c.n >= limit)
        return ahl_fail(err, AHL_EQUOTA,
                        "Data store %s has %u import jobs SUBMITTED or IN_PROGRESS; the quota is "
                        "%u concurrent import jobs per data store",
                        ds, c.n, limit);
    return 0;
}

static int expanded_output(const struct ahl_job_rec *j, char *out, size_t cap)
{
    size_t n = strlen(j->output_uri);
    int w = snprintf(out, cap, "%s%s%s-DicomImport-%s/", j->output_uri,
                     n && j->output_uri[n - 1] == '/' ? "" : "/", j->datastore_id, j->id);
    return w < 0 || (size_t)w >= cap ? AHL_ETOOBIG : 0;
}

int ahl__op_StartDICOMImportJob(struct ahl_api_service *svc, const json_t *in,
                                struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId");
    struct ahl_datastore_rec dsr;
    struct ahl_job_rec job, old;
    struct ahl_store_tx *tx = NULL;
    char *options = NULL, *old_options = NULL;
    int rc;

    if (!svc->s3_root[0] && !svc->s3_endpoint[0])
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "This server has no S3 source configured (start it with --s3-root or "
                        "--s3-endpoint)");
    if ((rc = job_options_text(in, &options, err)) < 0)
        return rc;
    memset(&job, 0, sizeof job);
    const char *job_id_parts[] = {"job", ds, ahl_api_str(in, "clientToken")};
    if (ahl__api_id_from_token(job_id_parts, 3, job.id) < 0)
        return NOMEM(err);
    ahl_job_rec_set_status(&job, AHL_JOB_SUBMITTED);
    if ((rc = ahl__api_copy_member(job.datastore_id, sizeof job.datastore_id, ds, "datastoreId",
                                   err)) < 0 ||
        (rc = ahl__api_copy_member(job.name, sizeof job.name, ahl_api_str(in, "jobName"), "jobName",
                                   err)) < 0 ||
        (rc = ahl__api_copy_member(job.role_arn, sizeof job.role_arn,
                                   ahl_api_str(in, "dataAccessRoleArn"), "dataAccessRoleArn",
                                   err)) < 0 ||
        (rc = ahl__api_copy_member(job.input_uri, sizeof job.input_uri,
                                   ahl_api_str(in, "inputS3Uri"), "inputS3Uri", err)) < 0 ||
        (rc = ahl__api_copy_member(job.output_uri, sizeof job.output_uri,
                                   ahl_api_str(in, "outputS3Uri"), "outputS3Uri", err)) < 0 ||
        (rc = ahl__api_copy_member(job.client_token, sizeof job.client_token,
                                   ahl_api_str(in, "clientToken"), "clientToken", err)) < 0)
        goto out;
    job.submitted_at_ms = ahl_now_ms();

    if ((rc = ahl_store_begin(svc->store, true, &tx)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "handling import job");
        goto out;
    }
    if ((rc = ahl__api_datastore_get(tx, ds, &dsr, err)) < 0)
        goto out;
    if (ahl_datastore_status_parse(dsr.status) != AHL_DATASTORE_ACTIVE) {
        rc = ahl_fail(err, AHL_ECONFLICT, "Data store %s is %s, not %s", ds, dsr.status,
                      ahl_datastore_status_name(AHL_DATASTORE_ACTIVE));
        goto out;
    }
    rc = ahl_store_job_get(tx, ds, job.id, &old);
    if (rc == 0 && (rc = ahl_store_job_options_get(tx, old.id, &old_options)) < 0) {
        rc = ahl_meta_store_fail(err, rc, "handling import job");
        goto out;
    }
    if (rc == 0) {
        if (strcmp(old.name, job.name) || strcmp(old.role_arn, job.role_arn) ||
            strcmp(old.input_uri, job.input_uri) || strcmp(old.output_uri, job.output_uri) ||
            strcmp(old_options, options)) {
            rc = ahl_fail(err, AHL_ECONFLICT,
                          "The clientToken was already used for import job %s with different "
                          "parameters",
                          old.id);
            goto out;
        }
        job = old;
        ahl_store_rollback(tx);
        tx = NULL;
    } else if (rc == AHL_ENOTFOUND) {
        if ((rc = check_concurrent(tx, ds,
                                   svc->job_max_concurrent ? svc->job_max_concurrent
                                                           : AHL_API_JOB_MAX_CONCURRENT,
                                   err)) < 0)
            goto out;
        if ((rc = ahl_store_job_put(tx, &job, true)) < 0 ||
            (options[0] && (rc = ahl_store_job_options_put(tx, job.id, options)) < 0) ||
            (rc = ahl_event_job(tx, AHL_EVENT_IMPORT_JOB_SUBMITTED, &job)) < 0) {
            rc = ahl_meta_store_fail(err, rc, "handling import job");
            goto out;
        }
        rc = ahl_store_commit(tx); /* ends tx whatever the outcome */
        tx = NULL;
        if (rc < 0) {
            rc = ahl_meta_store_fail(err, rc, "handling import job");
            goto out;
        }
        if (svc->job_submitted)
            svc->job_submitted(svc->job_ctx, &job);
    } else {
        rc = ahl_meta_store_fail(err, rc, "handling import job");
        goto out;
    }
    rc = ahl__api_set(resp->json, "datastoreId", json_string(ds));
    rc |= ahl__api_set(resp->json, "jobId", json_string(job.id));
    rc |= ahl__api_set(resp->json, "jobStatus", json_string(job.status));
    rc |= ahl__api_set(resp->json, "submittedAt", ahl_api_timestamp(job.submitted_at_ms));
    if (rc)
        rc = NOMEM(err);
out:
    ahl_store_rollback(tx);
    free(options);
    free(old_options);
    return rc;
}

int ahl__op_GetDICOMImportJob(struct ahl_api_service *svc, const json_t *in,
                              struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId"), *id = ahl_api_str(in, "jobId");
    struct ahl_job_rec j;
    struct ahl_store_tx *tx = NULL;
    char out_uri[1200];
    int rc;

    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling import job");
    char *options = NULL;
    rc = ahl_store_job_get(tx, ds, id, &j);
    if (rc == 0)
        rc = ahl_store_job_options_get(tx, id, &options);
    ahl_store_rollback(tx);
    json_t *opts = rc == 0 && options[0] ? json_loads(options, 0, NULL) : NULL;
    free(options);
    if (rc == AHL_ENOTFOUND)
        return ahl_fail(err, rc, "Import job %s does not exist in data store %s", id, ds);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "handling import job");
    json_t *p = json_object();
    if (!p || ahl__api_set(resp->json, "jobProperties", p) < 0) {
        json_decref(opts);
        return NOMEM(err);
    }
    json_t *icfg = json_object_get(opts, "importConfiguration");
    rc = icfg ? ahl__api_set(p, "importConfiguration", json_incref(icfg)) : 0;
    json_decref(opts);
    if (rc < 0)
        return NOMEM(err);
    if (expanded_output(&j, out_uri, sizeof out_uri) < 0)
        return ahl_fail(err, AHL_EINTERNAL, "the stored output URI is too long to expand");
    rc = ahl__api_set(p, "jobId", json_string(j.id));
    rc |= ahl__api_set(p, "jobName", json_string(j.name));
    rc |= ahl__api_set(p, "jobStatus", json_string(j.status));
    rc |= ahl__api_set(p, "datastoreId", json_string(j.datastore_id));
    rc |= ahl__api_set(p, "dataAccessRoleArn", json_string(j.role_arn));
    rc |= ahl__api_set_ts_opt(p, "endedAt", j.ended_at_ms);
    rc |= ahl__api_set_ts_opt(p, "submittedAt", j.submitted_at_ms);
    rc |= ahl__api_set(p, "inputS3Uri", json_string(j.input_uri));
    rc |= ahl__api_set(p, "outputS3Uri", json_string(out_uri));
    rc |= ahl__api_set_str_opt(p, "message", j.message);
    return rc ? NOMEM(err) : 0;
}

struct jobs_ctx {
    struct ahl__api_page page;
    char last_id[AHL_ID_LEN + 1];
};

static int job_item(void *vctx, const struct ahl_job_rec *j)
{
    struct jobs_ctx *c = vctx;
    json_t *o;
    int rc = ahl__api_page_item(&c->page, &o);
    if (rc != 0)
        return rc;
    memcpy(c->last_id, j->id, sizeof c->last_id);
    rc = ahl__api_set(o, "jobId", json_string(j->id));
    rc |= ahl__api_set(o, "jobName", json_string(j->name));
    rc |= ahl__api_set(o, "jobStatus", json_string(j->status));
    rc |= ahl__api_set(o, "datastoreId", json_string(j->datastore_id));
    rc |= ahl__api_set_str_opt(o, "dataAccessRoleArn", j->role_arn);
    rc |= ahl__api_set_ts_opt(o, "endedAt", j->ended_at_ms);
    rc |= ahl__api_set_ts_opt(o, "submittedAt", j->submitted_at_ms);
    rc |= ahl__api_set_str_opt(o, "message", j->message);
    return rc ? AHL_ENOMEM : 0;
}

int ahl__op_ListDICOMImportJobs(struct ahl_api_service *svc, const json_t *in,
                                struct ahl_api_resp *resp, struct ahl_err *err)
{
    const char *ds = ahl_api_str(in, "datastoreId");
    const char *token = ahl_api_str(in, "nextToken");
    struct jobs_ctx c = {0};
    struct ahl_store_tx *tx = NULL;
    char after[AHL_ID_LEN + 1] = "";
    int rc;

    c.page.limit = (unsigned)ahl_api_int(in, "maxResults", JOBS_DEFAULT_MAX);
    if (token && (rc = ahl__api_token_decode("j", token, after, sizeof after, err)) < 0)
        return rc;
    if ((rc = ahl__api_require_datastore(svc, ds, NULL, err)) < 0)
        return rc;
    c.page.items = json_array();
    if (!c.page.items || ahl__api_set(resp->json, "jobSummaries", c.page.items) < 0)
        return NOMEM(err);
    if ((rc = ahl_store_begin(svc->store, false, &tx)) < 0)
        return ahl_meta_store_fail(err, rc, "handling import jobs");
    rc = ahl_store_job_list(tx, ds, ahl_api_str(in, "jobStatus"), after, c.page.limit + 1, job_item,
                            &c);
    ahl_store_rollback(tx);
    if (rc < 0)
        return ahl_meta_store_fail(err, rc, "handling import jobs");
    if (c.page.more && ahl__api_token_encode("j", c.last_id, resp->json) < 0)
        return NOMEM(err);
    return 0;
}
