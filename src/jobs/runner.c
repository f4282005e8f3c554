/* The import-job runner (runner.h): claims SUBMITTED jobs, lists their input, imports every object
 * with the pool's workers and writes HealthImaging's output files. */
#include "blob/framestore.h"
#include "jobs/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/text.h"
#include "blob/objstore.h"
#include "frames/frames.h"
#include "import/import.h"
#include "json/json.h"
#include "meta/states.h"
#include "base/banned.h"

#define RUNNER_MAX_OBJECTS 1000000u           /* keys listed per job */
#define RUNNER_MAX_OBJECT ((uint64_t)4 << 30) /* HealthImaging's per-file quota */
#define RUNNER_MAX_PENDING 1024               /* job ids waiting to be claimed */

enum obj_state { O_PENDING, O_DONE, O_FAILED };

struct obj {
    char *key;
    uint64_t size;
    char *problem; /* from the listing: cannot be imported */
    enum obj_state state;
    struct ahl_import_result *res; /* once done */
};

struct job_run {
    struct ahl_job_rec rec;
    struct ahl_s3_uri in, out;
    struct obj *objs;
    size_t n, cap;
    size_t next;    /* next object to take (runner lock) */
    size_t helpers; /* workers importing one of its objects (runner lock) */
    struct ahl_importer *im;
    struct ahl_import_batch *batch;
    pthread_mutex_t mu; /* guards objs[].state/res from the batch callbacks */
    struct job_run *next_run;
};

struct pending {
    char ds[AHL_ID_LEN + 1];
    char id[AHL_ID_LEN + 1];
};

struct ahl_runner {
    struct ahl_meta *meta;
    struct ahl_store *store;
    char data_dir[1024], frames[1100], tmp[1100];
    char s3_root[1024], s3_endpoint[1024];
    struct ahl_framestore fs;        /* opened (and swept) once, shared by every job's importer */
    struct ahl_import_budget budget; /* shared by every job's importer */
    unsigned poll_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct pending pend[RUNNER_MAX_PENDING];
    size_t npend;
    struct job_run *running; /* jobs whose objects are being imported */
    pthread_t *threads;
    unsigned nthreads;
};

/* ---- store helpers ------------------------------------------------------------------------ */

/* Writes the job row: status, message, end time. */
static int job_set_status(struct ahl_runner *r, struct ahl_job_rec *rec, enum ahl_job_status status,
                          const char *message)
{
    struct ahl_store_tx *tx = NULL;
    ahl_job_rec_set_status(rec, status);
    ahl_str_copy_cut(rec->message, sizeof rec->message, message);
    if (status == AHL_JOB_COMPLETED || status == AHL_JOB_FAILED)
        rec->ended_at_ms = ahl_now_ms();
    int rc = ahl_store_begin(r->store, true, &tx);
    if (rc == 0)
        rc = ahl_store_job_put(tx, rec, false);
    if (rc == 0) {
        rc = ahl_store_commit(tx);
        tx = NULL;
    }
    ahl_store_rollback(tx);
    if (rc < 0)
        ahl_error("import job %s: cannot record status %s: %s", rec->id, ahl_job_status_name(status),
                  ahl_strerror(rc));
    return rc;
}

/* Claims a SUBMITTED job: moves it to IN_PROGRESS in one write transaction. 1 claimed, 0 not
 * (gone, or another runner has it), negative on store errors. */
static int job_claim(struct ahl_runner *r, const struct pending *p, struct ahl_job_rec *rec)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(r->store, true, &tx);
    if (rc < 0)
        return rc;
    rc = ahl_store_job_get(tx, p->ds, p->id, rec);
    if (rc == AHL_ENOTFOUND || (rc == 0 && ahl_job_status_parse(rec->status) != AHL_JOB_SUBMITTED)) {
        ahl_store_rollback(tx);
        return 0;
    }
    if (rc == 0) {
        ahl_job_rec_set_status(rec, AHL_JOB_IN_PROGRESS);
        rc = ahl_store_job_put(tx, rec, false);
    }
    if (rc == 0) {
        rc = ahl_store_commit(tx);
        tx = NULL;
    }
    ahl_store_rollback(tx);
    return rc < 0 ? rc : 1;
}

struct job_scan {
    struct ahl_runner *r;
    struct ahl_job_rec *v;
    size_t n, cap;
};

static int collect_job(void *ctx, const struct ahl_job_rec *rec)
{
    struct job_scan *s = ctx;
    if (s->n == s->cap) {
        if ((s->cap ? s->cap * 2 : 16) > RUNNER_MAX_PENDING)
            return 1;
        struct ahl_job_rec *v = ahl_array_grow(s->v, &s->cap, sizeof *v, 16);
        if (!v)
            return AHL_ENOMEM;
        s->v = v;
    }
    s->v[s->n++] = *rec;
    return 0;
}

struct ds_scan {
    char (*ids)[AHL_ID_LEN + 1];
    size_t n, cap;
};

static int collect_ds(void *ctx, const struct ahl_datastore_rec *rec)
{
    struct ds_scan *s = ctx;
    if (s->n == s->cap) {
        char(*v)[AHL_ID_LEN + 1] = ahl_array_grow(s->ids, &s->cap, sizeof *v, 16);
        if (!v)
            return AHL_ENOMEM;
        s->ids = v;
    }
    memcpy(s->ids[s->n++], rec->id, AHL_ID_LEN + 1);
    return 0;
}

/* Every job with this status in any data store (at most RUNNER_MAX_PENDING per data store). */
static int scan_jobs(struct ahl_runner *r, enum ahl_job_status status, struct job_scan *out)
{
    struct ds_scan d = {0};
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(r->store, false, &tx);
    if (rc < 0)
        return rc;
    rc = ahl_store_datastore_list(tx, NULL, NULL, 100000, collect_ds, &d);
    for (size_t i = 0; rc >= 0 && i < d.n; i++)
        rc = ahl_store_job_list(tx, d.ids[i], ahl_job_status_name(status), NULL, RUNNER_MAX_PENDING, collect_job, out);
    ahl_store_rollback(tx);
    free(d.ids);
    return rc < 0 ? rc : 0;
}

/* ---- the queue ---------------------------------------------------------------------------- */

/* Adds a job id to the queue unless it is queued or running already. Runner lock held. */
static void enqueue_locked(struct ahl_runner *r, const char *ds, const char *id)
{
    for (size_t i = 0; i < r->npend; i++)
        if (!strcmp(r->pend[i].id, id))
            return;
    for (struct job_run *j = r->running; j; j = j->next_run)
        if (!strcmp(j->rec.id, id))
            return;
    if (r->npend == RUNNER_MAX_PENDING)
        return; /* found again by the next scan */
    if (ahl_str_copy(r->pend[r->npend].ds, sizeof r->pend[0].ds, ds) < 0 ||
        ahl_str_copy(r->pend[r->npend].id, sizeof r->pend[0].id, id) < 0)
        return; /* not an id this runner wrote; never queued */
    r->npend++;
    pthread_cond_signal(&r->cv);
}

void ahl_runner_job_submitted(void *ctx, const struct ahl_job_rec *job)
{
    struct ahl_runner *r = ctx;
    pthread_mutex_lock(&r->mu);
    enqueue_locked(r, job->datastore_id, job->id);
    pthread_mutex_unlock(&r->mu);
}

static void scan_submitted(struct ahl_runner *r)
{
    struct job_scan s = {.r = r};
    if (scan_jobs(r, AHL_JOB_SUBMITTED, &s) == 0) {
        pthread_mutex_lock(&r->mu);
        for (size_t i = 0; i < s.n; i++)
            enqueue_locked(r, s.v[i].datastore_id, s.v[i].id);
        pthread_mutex_unlock(&r->mu);
    }
    free(s.v);
}

/* ---- objects ------------------------------------------------------------------------------ */

static int open_objstore(struct ahl_runner *r, struct ahl_objstore **os, struct ahl_err *err)
{
    if (r->s3_root[0])
        return ahl_objstore_open_local(r->s3_root, os, err);
    struct ahl_s3_config c = {.endpoint = r->s3_endpoint};
    return ahl_objstore_open_s3(&c, os, err);
}

static int on_object(void *ctx, const struct ahl_object_info *o)
{
    struct job_run *j = ctx;
    size_t kl = strlen(o->key);
    if (kl && o->key[kl - 1] == '/' && o->size == 0)
        return 0; /* a "folder" placeholder, not an object to import */
    if (j->n == RUNNER_MAX_OBJECTS)
        return AHL_ETOOBIG;
    if (j->n == j->cap) {
        struct obj *v = ahl_array_grow(j->objs, &j->cap, sizeof *v, 64);
        if (!v)
            return AHL_ENOMEM;
        j->objs = v;
    }
    struct obj *ob = &j->objs[j->n];
    memset(ob, 0, sizeof *ob);
    ob->key = strdup(o->key);
    ob->problem = o->problem ? strdup(o->problem) : NULL;
    ob->size = o->size;
    if (!ob->key || (o->problem && !ob->problem)) {
        free(ob->key);
        free(ob->problem);
        return AHL_ENOMEM;
    }
    j->n++;
    return 0;
}

static void record(struct job_run *j, size_t i, const struct ahl_import_result *res)
{
    struct ahl_import_result *copy = malloc(sizeof *copy);
    pthread_mutex_lock(&j->mu);
    if (copy)
        *copy = *res;
    free(j->objs[i].res);
    j->objs[i].res = copy;
    j->objs[i].state = res->rc == 0 ? O_DONE : O_FAILED;
    pthread_mutex_unlock(&j->mu);
}

static void on_imported(void *ctx, void *tag, const struct ahl_import_result *res)
{
    record(ctx, (size_t)(uintptr_t)tag, res);
}

/* A failure's exceptionType as HealthImaging's job output format has it (failure.ndjson): the
 * format names two, the input's fault and the server's. The importer names its own failures the
 * same way (import.c). */
static void fail_object(struct job_run *j, size_t i, bool customer, const char *fmt, const char *a)
{
    struct ahl_import_result res;
    memset(&res, 0, sizeof res);
    res.rc = customer ? AHL_EINVAL : AHL_EIO;
    ahl_import_result_blame(&res, customer);
    snprintf(res.message, sizeof res.message, fmt, a);
    record(j, i, &res);
}

/* Imports object i of job j: streamed into an unlinked scratch file, then prepared and added to
 * the job's batch. */
static void import_object(struct ahl_runner *r, struct job_run *j, size_t i)
{
    struct obj *ob = &j->objs[i];
    struct ahl_objstore *os = NULL;
    struct ahl_import_item *it = NULL;
    struct ahl_import_result res;
    struct ahl_err err;
    char path[1200];
    int fd = -1;
    if (ob->problem) {
        fail_object(j, i, true, "%s", ob->problem);
        return;
    }
    if (ob->size > RUNNER_MAX_OBJECT) {
        fail_object(j, i, true, "%s", "the file is larger than the 4 GB per-file import quota");
        return;
    }
    snprintf(path, sizeof path, "%s/obj-XXXXXX", r->tmp);
    if ((fd = mkstemp(path)) < 0) {
        fail_object(j, i, false, "cannot create a scratch file: %s", strerror(errno));
        return;
    }
    unlink(path);
    ahl_err_clear(&err);
    if (open_objstore(r, &os, &err) < 0 ||
        ahl_objstore_get_fd(os, j->in.bucket, ob->key, fd, &err) < 0) {
        bool customer = err.code == AHL_ENOTFOUND || err.code == AHL_EDENIED;
        fail_object(j, i, customer, "cannot read the object: %s", err.msg);
        goto out;
    }
    if (ahl_import_prepare_fd(j->im, fd, ob->key, &it, &res) < 0)
        record(j, i, &res);
    else
        ahl_import_batch_add(j->batch, it, (void *)(uintptr_t)i);
out:
    ahl_objstore_close(os);
    close(fd);
}

/* ---- outputs ------------------------------------------------------------------------------ */

/* Appends one ndjson line: the compact JSON of o and a newline. Consumes o. */
static int add_line(struct ahl_buf *b, json_t *o)
{
    int rc = o ? ahl_json_write(o, b) : AHL_ENOMEM;
    json_decref(o);
    return rc < 0 ? rc : ahl_buf_addc(b, '\n');
}

struct set_sum {
    char id[AHL_ID_LEN + 1];
    uint64_t version;
    bool primary;
    unsigned long matched;
};

static int finish_outputs(struct ahl_runner *r, struct job_run *j, char *why, size_t why_cap)
{
    struct ahl_buf ok, bad, warn, man;
    struct ahl_objstore *os = NULL;
    struct ahl_err err;
    struct set_sum *sets = calloc(j->n ? j->n : 1, sizeof *sets);
    size_t nsets = 0;
    unsigned long imported = 0, customer = 0, server = 0;
    char folder[1200], uri[1300], key[1400];
    json_t *summary = NULL;
    int rc = 0;
    ahl_buf_init(&ok, AHL_BUF_UNLIMITED);
    ahl_buf_init(&bad, AHL_BUF_UNLIMITED);
    ahl_buf_init(&warn, AHL_BUF_UNLIMITED);
    ahl_buf_init(&man, AHL_BUF_UNLIMITED);
    if (!sets) {
        snprintf(why, why_cap, "out of memory");
        rc = AHL_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < j->n && rc == 0; i++) {
        struct obj *ob = &j->objs[i];
        const struct ahl_import_result *res = ob->res;
        if (!res || ob->state == O_PENDING) {
            server++;
            rc = add_line(&bad, json_pack("{s:s,s:{s:s,s:s}}", "inputFile", ob->key, "exception",
                                          "exceptionType", ahl_import_exception_type(false), "message",
                                          "the object was not processed"));
            continue;
        }
        if (res->rc < 0) {
            res->customer_error ? customer++ : server++;
            rc = add_line(&bad,
                          json_pack("{s:s,s:{s:s,s:s}}", "inputFile", ob->key, "exception",
                                    "exceptionType", res->exception_type, "message", res->message));
            continue;
        }
        imported++;
        size_t k = 0;
        while (k < nsets && strcmp(sets[k].id, res->imageset_id))
            k++;
        if (k == nsets) {
            memcpy(sets[k].id, res->imageset_id, sizeof sets[k].id);
            sets[k].primary = res->is_primary;
            nsets++;
        }
        sets[k].matched++;
        if (res->version > sets[k].version)
            sets[k].version = res->version;
        rc =
            add_line(&ok, json_pack("{s:s,s:{s:s,s:I,s:b}}", "inputFile", ob->key, "importResponse",
                                    "imageSetId", res->imageset_id, "imageSetVersion",
                                    (json_int_t)res->version, "isPrimary", res->is_primary));
        if (rc == 0 && (res->n_warnings || res->invalid_offset_table)) {
            json_t *list = json_array();
            if (list && res->n_warnings)
                json_array_append_new(list, json_pack("{s:s,s:s}", "type", res->warning_type,
                                                      "message", res->warning));
            if (list && res->invalid_offset_table)
                json_array_append_new(list, json_pack("{s:i,s:s,s:s}", "warning_reason_code",
                                                      AHL_IMPORT_WARNING_BOT_CODE, "type",
                                                      AHL_IMPORT_WARNING_BOT_TYPE, "message",
                                                      AHL_IMPORT_WARNING_BOT_MESSAGE));
            rc = add_line(&warn, json_pack("{s:s,s:{s:s,s:I,s:b,s:o}}", "inputFile", ob->key,
                                           "importResponse", "imageSetId", res->imageset_id,
                                           "imageSetVersion", (json_int_t)res->version, "isPrimary",
                                           res->is_primary, "warnings", list));
        }
    }
    if (rc < 0) {
        snprintf(why, why_cap, "cannot build the job outputs: %s", ahl_strerror(rc));
        goto out;
    }

    /* The job's own output folder, as GetDICOMImportJob reports it. */
    size_t pl = strlen(j->out.prefix);
    snprintf(folder, sizeof folder, "%s%s%s-DicomImport-%s/", j->out.prefix,
             pl && j->out.prefix[pl - 1] != '/' ? "/" : "", j->rec.datastore_id, j->rec.id);
    snprintf(uri, sizeof uri, "s3://%s/%s", j->out.bucket, folder);
    json_t *list = json_array();
    for (size_t k = 0; list && k < nsets; k++)
        json_array_append_new(
            list, json_pack("{s:s,s:I,s:b,s:I}", "imageSetId", sets[k].id, "imageSetVersion",
                            (json_int_t)sets[k].version, "isPrimary", sets[k].primary,
                            "numberOfMatchedSOPInstances", (json_int_t)sets[k].matched));
    char okuri[1400], baduri[1400], warnuri[1400];
    snprintf(okuri, sizeof okuri, "%sSUCCESS/", uri);
    snprintf(baduri, sizeof baduri, "%sFAILURE/", uri);
    snprintf(warnuri, sizeof warnuri, "%sWARNING/", uri);
    summary =
        json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:o}}", "jobSummary",
                  "jobId", j->rec.id, "datastoreId", j->rec.datastore_id, "inputS3Uri",
                  j->rec.input_uri, "outputS3Uri", uri, "successOutputS3Uri", okuri,
                  "failureOutputS3Uri", baduri, "warningsOutputS3Uri", warnuri,
                  "numberOfScannedFiles", (json_int_t)j->n, "numberOfImportedFiles",
                  (json_int_t)imported, "numberOfFilesWithCustomerError", (json_int_t)customer,
                  "numberOfFilesWithServerError", (json_int_t)server, "numberOfGeneratedImageSets",
                  (json_int_t)nsets, "imageSetsSummary", list ? list : json_array());
    if (!summary || ahl_json_write(summary, &man) < 0) {
        snprintf(why, why_cap, "out of memory");
        rc = AHL_ENOMEM;
        goto out;
    }
    if ((rc = open_objstore(r, &os, &err)) < 0) {
        snprintf(why, why_cap, "cannot open the output location: %s", err.msg);
        goto out;
    }
    static const char *const names[] = {"SUCCESS/success.ndjson", "FAILURE/failure.ndjson",
                                        "WARNING/warning.ndjson", "job-output-manifest.json"};
    struct ahl_buf *bufs[] = {&ok, &bad, &warn, &man};
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof key, "%s%s", folder, names[k]);
        if ((rc = ahl_objstore_put(
                 os, j->out.bucket, key, bufs[k]->data ? bufs[k]->data : "", bufs[k]->len,
                 k == 3 ? "application/json" : "application/x-ndjson", &err)) < 0) {
            snprintf(why, why_cap, "cannot write %.200s%s: %.300s", uri, names[k], err.msg);
            goto out;
        }
    }
    ahl_info("import job %s: %zu objects, %lu imported, %lu failed (%lu server), %zu image sets",
             j->rec.id, j->n, imported, customer + server, server, nsets);
out:
    json_decref(summary);
    ahl_objstore_close(os);
    ahl_buf_release(&ok);
    ahl_buf_release(&bad);
    ahl_buf_release(&warn);
    ahl_buf_release(&man);
    free(sets);
    return rc;
}

static void job_free(struct job_run *j)
{
    if (!j)
        return;
    ahl_import_batch_free(j->batch);
    ahl_importer_close(j->im);
    for (size_t i = 0; i < j->n; i++) {
        free(j->objs[i].key);
        free(j->objs[i].problem);
        free(j->objs[i].res);
    }
    free(j->objs);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Commits what is pending, writes the outputs, marks the job COMPLETED (or FAILED). */
static void job_finish(struct ahl_runner *r, struct job_run *j)
{
    char why[600] = "";
    ahl_import_batch_flush(j->batch);
    if (finish_outputs(r, j, why, sizeof why) < 0)
        job_set_status(r, &j->rec, AHL_JOB_FAILED, why);
    else
        job_set_status(r, &j->rec, AHL_JOB_COMPLETED, NULL);
    job_free(j);
}

/* Claims a queued job and lists its input. NULL when there is nothing to run (not claimable,
 * or it failed at once and was recorded as FAILED). */
static struct job_run *job_start(struct ahl_runner *r, const struct pending *p)
{
    struct job_run *j = calloc(1, sizeof *j);
    struct ahl_objstore *os = NULL;
    struct ahl_err err;
    char why[700];
    ahl_err_clear(&err);
    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    int rc = job_claim(r, p, &j->rec);
    if (rc <= 0) {
        if (rc < 0)
            ahl_error("import job %s: cannot claim it: %s", p->id, ahl_strerror(rc));
        job_free(j);
        return NULL;
    }
    ahl_info("import job %s: started (%s -> %s)", j->rec.id, j->rec.input_uri, j->rec.output_uri);
    if (ahl_s3_uri_parse(j->rec.input_uri, &j->in, &err) < 0 ||
        ahl_s3_uri_parse(j->rec.output_uri, &j->out, &err) < 0) {
        snprintf(why, sizeof why, "%s", err.msg);
        goto fail;
    }
    struct ahl_import_opts o = {
        .frames = &r->fs, .lock_dir = r->data_dir, .tmp_dir = r->tmp, .budget = &r->budget};
    if (ahl_importer_open(r->meta, j->rec.datastore_id, &o, &j->im, &err) < 0 ||
        ahl_import_batch_new(j->im, on_imported, j, &j->batch) < 0) {
        snprintf(why, sizeof why, "%s", err.msg[0] ? err.msg : "out of memory");
        goto fail;
    }
    if (open_objstore(r, &os, &err) < 0 ||
        ahl_objstore_list(os, j->in.bucket, j->in.prefix, on_object, j, &err) < 0) {
        snprintf(why, sizeof why, "cannot list %.200s: %.400s", j->rec.input_uri,
                 err.msg[0] ? err.msg : "too many objects");
        goto fail;
    }
    ahl_objstore_close(os);
    return j;
fail:
    ahl_objstore_close(os);
    ahl_warn("import job %s: failed: %s", j->rec.id, why);
    job_set_status(r, &j->rec, AHL_JOB_FAILED, why);
    job_free(j);
    return NULL;
}

/* ---- workers ------------------------------------------------------------------------------ */

static void *worker(void *arg)
{
    struct ahl_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        /* Help a running job with its next object. */
        struct job_run *j = r->running;
        while (j && j->next >= j->n)
            j = j->next_run;
        if (j) {
            size_t i = j->next++;
            j->helpers++;
            pthread_mutex_unlock(&r->mu);
            import_object(r, j, i);
            pthread_mutex_lock(&r->mu);
            j->helpers--;
            if (j->next >= j->n && j->helpers == 0) {
                /* The last object is done: this worker finishes the job. */
                struct job_run **pp = &r->running;
                while (*pp != j)
                    pp = &(*pp)->next_run;
                *pp = j->next_run;
                pthread_mutex_unlock(&r->mu);
                job_finish(r, j);
                pthread_mutex_lock(&r->mu);
            }
            continue;
        }
        /* Claim a queued job. */
        if (r->npend) {
            struct pending p = r->pend[0];
            memmove(r->pend, r->pend + 1, (r->npend - 1) * sizeof r->pend[0]);
            r->npend--;
            pthread_mutex_unlock(&r->mu);
            struct job_run *nj = job_start(r, &p);
            if (nj && nj->n == 0) {
                job_finish(r, nj); /* an empty input: a completed job with empty outputs */
                nj = NULL;
            }
            pthread_mutex_lock(&r->mu);
            if (nj) {
                nj->next_run = r->running;
                r->running = nj;
                pthread_cond_broadcast(&r->cv); /* the other workers can help */
            }
            continue;
        }
        /* Idle: wait for a submission, or scan the store now and then (jobs submitted by another
         * process on the same data directory). */
        struct timespec ts = ahl_deadline(CLOCK_REALTIME, (uint64_t)r->poll_ms * 1000);
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT && !r->stop && !r->npend) {
            pthread_mutex_unlock(&r->mu);
            scan_submitted(r);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- start and stop ----------------------------------------------------------------------- */

/* Jobs left IN_PROGRESS by a previous run were interrupted: run them again from the start. */
static void recover(struct ahl_runner *r)
{
    struct job_scan s = {.r = r};
    if (scan_jobs(r, AHL_JOB_IN_PROGRESS, &s) < 0) {
        ahl_error("import jobs: cannot look for interrupted jobs");
        free(s.v);
        return;
    }
    for (size_t i = 0; i < s.n; i++) {
        ahl_info("import job %s was interrupted; it will run again", s.v[i].id);
        job_set_status(r, &s.v[i], AHL_JOB_SUBMITTED, NULL);
    }
    free(s.v);
}

int ahl_runner_start(const struct ahl_runner_config *cfg, struct ahl_runner **out,
                     struct ahl_err *err)
{
    struct ahl_runner *r;
    *out = NULL;
    if (!cfg->meta || !cfg->data_dir || (!cfg->s3_root == !cfg->s3_endpoint))
        return ahl_fail(err, AHL_EINVAL,
                        "the import runner needs a data directory and one of --s3-root or "
                        "--s3-endpoint");
    if (!(r = calloc(1, sizeof *r)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    r->meta = cfg->meta;
    r->store = ahl_meta_store(cfg->meta);
    r->poll_ms = cfg->poll_ms ? cfg->poll_ms : 2000;
    snprintf(r->data_dir, sizeof r->data_dir, "%s", cfg->data_dir);
    snprintf(r->frames, sizeof r->frames, "%s/frames", cfg->data_dir);
    snprintf(r->tmp, sizeof r->tmp, "%s/tmp", cfg->data_dir);
    snprintf(r->s3_root, sizeof r->s3_root, "%s", cfg->s3_root ? cfg->s3_root : "");
    snprintf(r->s3_endpoint, sizeof r->s3_endpoint, "%s", cfg->s3_endpoint ? cfg->s3_endpoint : "");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    ahl_import_budget_init(&r->budget, cfg->memory_budget);
    if (mkdir(r->tmp, 0700) < 0 && errno != EEXIST) {
        int rc = ahl_fail(err, AHL_EIO, "cannot create %s: %s", r->tmp, strerror(errno));
        ahl_runner_stop(r);
        return rc;
    }
    int rc = ahl_framestore_open(&r->fs, r->frames, err);
    if (rc < 0) {
        ahl_runner_stop(r);
        return rc;
    }
    recover(r);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cfg->workers ? cfg->workers : (ncpu > 0 ? (unsigned)ncpu : 2);
    if (!(r->threads = calloc(n, sizeof *r->threads))) {
        ahl_runner_stop(r);
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    for (; r->nthreads < n; r->nthreads++)
        if (pthread_create(&r->threads[r->nthreads], NULL, worker, r) != 0)
            break;
    if (!r->nthreads) {
        ahl_runner_stop(r);
        return ahl_fail(err, AHL_EINTERNAL, "cannot start import workers");
    }
    /* No scan here: the workers' first one comes poll_ms later, after the caller has finished
     * starting up (the API server opens the frame store, which sweeps temporary files). */
    *out = r;
    return 0;
}

void ahl_runner_stop(struct ahl_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    /* Jobs not finished stay IN_PROGRESS in the store and run again at the next start; what their
     * batches hold is committed (flushed by job_free) so the work done is kept. */
    while (r->running) {
        struct job_run *j = r->running;
        r->running = j->next_run;
        job_free(j);
    }
    free(r->threads);
    ahl_import_budget_release(&r->budget);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
