/* The import-job runner (runner.h): claims jobs under a lease that a heartbeat renews, lists their
 * input, imports every object with the pool's workers and writes HealthImaging's output files. */
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
#include "base/codec.h"
#include "base/log.h"
#include "base/text.h"
#include "blob/objstore.h"
#include "frames/frames.h"
#include "import/import.h"
#include "import/mapping.h"
#include "json/json.h"
#include "meta/events.h"
#include "meta/states.h"
#include "base/banned.h"

#define RUNNER_MAX_OBJECTS 1000000u           /* keys listed per job */
#define RUNNER_MAX_OBJECT ((uint64_t)4 << 30) /* HealthImaging's per-file quota */

enum obj_state { O_PENDING, O_DONE, O_FAILED };

struct obj {
    char *key;
    uint64_t size;
    char *problem; /* from the listing: cannot be imported */
    bool metadata; /* a metadata file of the job's mappings: read, not imported */
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
    bool listing;   /* claimed, its input being listed: no object to take yet (runner lock) */
    bool lost;      /* the lease is lost: take no more objects, write nothing (runner lock) */
    bool renewing;  /* the heartbeat is renewing its lease (runner lock) */
    uint64_t held_until_ns; /* monotonic: the lease surely holds until then (runner lock) */
    uint64_t renew_at_ns;   /* monotonic: when the heartbeat renews it next (runner lock) */
    struct ahl_importer *im;
    struct ahl_import_batch *batch;
    char owner[16];                   /* inputOwnerAccountId, "" when none */
    struct ahl_mapping_set *mappings; /* importConfiguration's, NULL when none */
    pthread_mutex_t mu; /* guards objs[].state/res from the batch callbacks */
    struct job_run *next_run;
};

struct ahl_runner {
    struct ahl_meta *meta;
    struct ahl_store *store;
    char data_dir[1024], tmp[1100];
    char s3_root[1024], s3_endpoint[1024];
    char account[16]; /* the owner of local buckets */
    unsigned max_files;
    uint64_t max_bytes;
    char node[AHL_NODE_ID_MAX + 1];  /* this process's id in the jobs' leases */
    struct ahl_framestore fs;        /* opened (and swept) once, shared by every job's importer */
    struct ahl_import_budget budget; /* shared by every job's importer */
    unsigned poll_ms, lease_ms, renew_ms, max_attempts;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* workers: a job or objects to take, stop, thaw */
    pthread_cond_t hb_cv; /* the heartbeat: stop, thaw */
    bool stop;
    bool frozen;             /* ahl_runner_freeze */
    unsigned claims_wanted;  /* submissions announced by the hook, not yet tried */
    unsigned claims_max;     /* bound of claims_wanted: the workers asked for */
    uint64_t last_claim_ns;  /* when a worker last looked for a job (monotonic) */
    struct job_run *running; /* jobs this node holds: being listed, or their objects imported */
    pthread_t *threads;
    unsigned nthreads;
    pthread_t heartbeat;
    bool heartbeat_started;
};

/* ---- store helpers ------------------------------------------------------------------------ */

/* Runs one lease call in its own write transaction. */
static int lease_tx(struct ahl_runner *r, int (*call)(struct ahl_store_tx *, struct ahl_runner *,
                                                      struct ahl_job_rec *),
                    struct ahl_job_rec *rec)
{
    struct ahl_store_tx *tx = NULL;
    int rc = ahl_store_begin(r->store, true, &tx);
    if (rc < 0)
        return rc;
    rc = call(tx, r, rec);
    if (rc == 0)
        return ahl_store_commit(tx);
    ahl_store_rollback(tx);
    return rc;
}

static int call_claim(struct ahl_store_tx *tx, struct ahl_runner *r, struct ahl_job_rec *rec)
{
    int rc = ahl_store_job_claim(tx, r->node, r->lease_ms, rec);
    return rc < 0 ? rc : ahl_event_job(tx, AHL_EVENT_IMPORT_JOB_IN_PROGRESS, rec);
}

static int call_renew(struct ahl_store_tx *tx, struct ahl_runner *r, struct ahl_job_rec *rec)
{
    return ahl_store_job_renew(tx, rec->id, r->node, r->lease_ms);
}

static int call_release(struct ahl_store_tx *tx, struct ahl_runner *r, struct ahl_job_rec *rec)
{
    int rc = ahl_store_job_release(tx, rec, r->node);
    if (rc < 0)
        return rc;
    /* A job handed back (SUBMITTED, its node stopping) makes no event: it is still to run. */
    switch (ahl_job_status_parse(rec->status)) {
    case AHL_JOB_COMPLETED:
        return ahl_event_job(tx, AHL_EVENT_IMPORT_JOB_COMPLETED, rec);
    case AHL_JOB_FAILED:
        return ahl_event_job(tx, AHL_EVENT_IMPORT_JOB_FAILED, rec);
    default:
        return 0;
    }
}

/* Ends this node's hold of the job with status (and message): COMPLETED or FAILED end the job,
 * SUBMITTED hands it back. AHL_ECONFLICT when another node has taken it over meanwhile. */
static int job_release(struct ahl_runner *r, struct ahl_job_rec *rec, enum ahl_job_status status,
                       const char *message)
{
    ahl_job_rec_set_status(rec, status);
    ahl_str_copy_cut(rec->message, sizeof rec->message, message);
    rec->ended_at_ms = status == AHL_JOB_COMPLETED || status == AHL_JOB_FAILED ? ahl_now_ms() : 0;
    int rc = lease_tx(r, call_release, rec);
    if (rc == AHL_ECONFLICT)
        ahl_warn("import job %s: another node took it over; its status is that node's", rec->id);
    else if (rc < 0)
        ahl_error("import job %s: cannot record status %s: %s", rec->id,
                  ahl_job_status_name(status), ahl_strerror(rc));
    return rc;
}

/* Renews the lease of j (the heartbeat, and once more before the outputs are written). 0 while
 * this node holds it; AHL_ECONFLICT once it is lost, which is recorded in j. */
static int job_renew(struct ahl_runner *r, struct job_run *j)
{
    uint64_t t0 = ahl_mono_ns();
    int rc = lease_tx(r, call_renew, &j->rec);
    pthread_mutex_lock(&r->mu);
    if (rc == 0) {
        j->held_until_ns = t0 + (uint64_t)r->lease_ms * 1000000u;
    } else if (rc == AHL_ECONFLICT || ahl_mono_ns() >= j->held_until_ns) {
        /* Taken over, or not renewed in time: another node may be running it now. */
        if (!j->lost)
            ahl_warn("import job %s: this node (%s) lost its lease (%s); it stops the job here",
                     j->rec.id, r->node, rc == AHL_ECONFLICT ? "another node took the job over"
                                                            : ahl_strerror(rc));
        j->lost = true; /* its workers take no more objects */
        rc = AHL_ECONFLICT;
    } else {
        ahl_warn("import job %s: cannot renew its lease: %s; trying again", j->rec.id,
                 ahl_strerror(rc));
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- the queue ---------------------------------------------------------------------------- */

void ahl_runner_job_submitted(void *ctx, const struct ahl_job_rec *job)
{
    struct ahl_runner *r = ctx;
    (void)job; /* claimed in submission order with the others, by whichever node is idle */
    pthread_mutex_lock(&r->mu);
    if (r->claims_wanted < r->claims_max)
        r->claims_wanted++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- objects ------------------------------------------------------------------------------ */

/* owner: the account that must own the bucket (S3 checks it, x-amz-expected-bucket-owner), or
 * NULL. Local buckets are the server's account's, checked once in job_start. */
static int open_objstore(struct ahl_runner *r, const char *owner, struct ahl_objstore **os,
                         struct ahl_err *err)
{
    if (r->s3_root[0])
        return ahl_objstore_open_local(r->s3_root, os, err);
    struct ahl_s3_config c = {.endpoint = r->s3_endpoint, .expected_owner = owner};
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
    if (open_objstore(r, j->owner, &os, &err) < 0 ||
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
    if ((rc = open_objstore(r, NULL, &os, &err)) < 0) {
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
    ahl_mapping_set_free(j->mappings);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Removes j from the running jobs and waits until the heartbeat is done with it. Runner lock
 * held. */
static void unlink_job(struct ahl_runner *r, struct job_run *j)
{
    struct job_run **pp = &r->running;
    while (*pp && *pp != j)
        pp = &(*pp)->next_run;
    if (*pp)
        *pp = j->next_run;
    while (j->renewing)
        pthread_cond_wait(&r->cv, &r->mu);
}

/* Commits what is pending, writes the outputs, marks the job COMPLETED (or FAILED); a job whose
 * lease was lost is dropped without a write. j is no longer among the running jobs. */
static void job_finish(struct ahl_runner *r, struct job_run *j)
{
    char why[600] = "";
    ahl_import_batch_flush(j->batch);
    pthread_mutex_lock(&r->mu);
    bool lost = j->lost;
    pthread_mutex_unlock(&r->mu);
    /* Proof that this node still runs the job, and a whole lease for writing its outputs. */
    if (!lost && job_renew(r, j) == AHL_ECONFLICT)
        lost = true;
    if (lost)
        ahl_info("import job %s: left to the node that took it over", j->rec.id);
    else if (finish_outputs(r, j, why, sizeof why) < 0)
        job_release(r, &j->rec, AHL_JOB_FAILED, why);
    else
        job_release(r, &j->rec, AHL_JOB_COMPLETED, NULL);
    job_free(j);
}

/* ---- options, quotas and metadata mappings ------------------------------------------------- */

/* Reads the job's options (store.h, ahl_store_job_options_get): inputOwnerAccountId into j->owner,
 * importConfiguration's mappings into *maps (a new reference, NULL when none). */
static int job_options(struct ahl_runner *r, struct job_run *j, json_t **maps, char *why,
                       size_t cap)
{
    struct ahl_store_tx *tx = NULL;
    char *text = NULL;
    int rc = ahl_store_begin(r->store, false, &tx);
    if (rc == 0) {
        rc = ahl_store_job_options_get(tx, j->rec.id, &text);
        ahl_store_rollback(tx);
    }
    json_t *o = rc == 0 && text[0] ? json_loads(text, 0, NULL) : NULL;
    if (rc == 0 && text[0] && !json_is_object(o))
        rc = AHL_ECORRUPT;
    free(text);
    if (rc < 0) {
        json_decref(o);
        snprintf(why, cap, "cannot read the job's options: %s", ahl_strerror(rc));
        return rc;
    }
    const char *owner = json_string_value(json_object_get(o, "inputOwnerAccountId"));
    snprintf(j->owner, sizeof j->owner, "%s", owner ? owner : "");
    json_t *m = json_object_get(json_object_get(json_object_get(o, "importConfiguration"),
                                                "dicomJsonMetadataImportConfiguration"),
                                "dicomMetadataMappings");
    *maps = json_is_array(m) ? json_incref(m) : NULL;
    json_decref(o);
    return 0;
}

/* HealthImaging's per-job quotas, on what the listing found (metadata files included). */
static int job_quotas(struct ahl_runner *r, struct job_run *j, char *why, size_t cap)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < j->n; i++)
        bytes += j->objs[i].size;
    if (j->n > r->max_files) {
        snprintf(why, cap,
                 "the input holds %zu files; the quota is %u files per import job "
                 "(--job-max-files)",
                 j->n, r->max_files);
        return AHL_EQUOTA;
    }
    if (bytes > r->max_bytes) {
        snprintf(why, cap,
                 "the input holds %llu bytes; the quota is %llu MiB per import job "
                 "(--job-max-mib)",
                 (unsigned long long)bytes, (unsigned long long)(r->max_bytes >> 20));
        return AHL_EQUOTA;
    }
    return 0;
}

static int add_bytes(void *ctx, const void *p, size_t n)
{
    return ahl_buf_add(ctx, p, n) < 0 ? AHL_ETOOBIG : 0;
}

/* The object of key among the job's, appended (with no size) when the listing did not find it. */
static struct obj *object_of(struct job_run *j, const char *key)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->objs[i].key, key) == 0)
            return &j->objs[i];
    struct ahl_object_info oi = {.key = key};
    return on_object(j, &oi) == 0 ? &j->objs[j->n - 1] : NULL;
}

/* Reads and parses the metadata file of every mapping into j->mappings. A file that cannot be
 * used stays among the job's objects with the reason as its problem (a failure line), and the
 * instances of its study or series then fail (mapping.h); the others are taken out, as they are
 * not DICOM to import. Fails the job only when out of memory. */
static int load_mappings(struct ahl_runner *r, struct job_run *j, struct ahl_objstore *os,
                         const json_t *maps, char *why, size_t cap)
{
    struct ahl_buf b;
    size_t i;
    const json_t *m;
    int rc = 0;
    (void)r;
    ahl_buf_init(&b, AHL_MAPPING_MAX_BYTES + 1);
    if (!(j->mappings = ahl_mapping_set_new()))
        goto nomem;
    json_array_foreach(maps, i, m)
    {
        const char *study = json_string_value(json_object_get(m, "studyInstanceUID"));
        const char *series = json_string_value(json_object_get(m, "seriesInstanceUID"));
        const char *path = json_string_value(json_object_get(m, "metadataFilePath"));
        char key[AHL_S3_MAX_KEY + 1], problem[700] = "";
        struct ahl_err err;
        json_t *levels = NULL;
        ahl_err_clear(&err);
        if (!study || !path)
            continue; /* checked by StartDICOMImportJob */
        ahl_buf_reset(&b);
        if (ahl_mapping_object_key(j->in.prefix, path, key, sizeof key) < 0)
            snprintf(key, sizeof key, "%.900s", path);
        if (strlen(key) > AHL_S3_MAX_KEY - 1)
            snprintf(problem, sizeof problem, "the key is longer than %d bytes", AHL_S3_MAX_KEY);
        else if ((rc = ahl_objstore_get(os, j->in.bucket, key, add_bytes, &b, &err)) < 0)
            snprintf(problem, sizeof problem, "%s",
                     rc == AHL_ETOOBIG ? "the metadata file is larger than 1 MiB"
                     : err.msg[0]      ? err.msg
                                       : ahl_strerror(rc));
        else if (ahl_mapping_parse(b.data ? b.data : "", b.len, study, series, &levels, &err) < 0)
            snprintf(problem, sizeof problem, "%s", err.msg);
        rc = 0;
        struct obj *ob = object_of(j, key);
        if (!ob)
            goto nomem;
        ob->metadata = true;
        if (problem[0] && !ob->problem) {
            char msg[1000];
            snprintf(msg, sizeof msg, "metadata file for study %.64s%s%.64s: %s", study,
                     series ? " series " : "", series ? series : "", problem);
            if (!(ob->problem = strdup(msg)))
                goto nomem;
        }
        if (ahl_mapping_set_add(j->mappings, study, series, key, levels,
                                problem[0] ? problem : NULL) < 0)
            goto nomem;
    }
    /* The metadata files that were used are not objects to import. */
    size_t k = 0;
    for (i = 0; i < j->n; i++) {
        if (j->objs[i].metadata && !j->objs[i].problem) {
            free(j->objs[i].key);
            continue;
        }
        j->objs[k++] = j->objs[i];
    }
    j->n = k;
    ahl_buf_release(&b);
    return 0;
nomem:
    ahl_buf_release(&b);
    snprintf(why, cap, "out of memory reading the metadata files");
    return AHL_ENOMEM;
}

/* Claims a job for this node and lists its input; the job is then among the running jobs, its
 * objects for any idle worker. false when no job was claimable. */
static bool job_start(struct ahl_runner *r)
{
    struct job_run *j = calloc(1, sizeof *j);
    struct ahl_objstore *os = NULL;
    struct ahl_err err;
    json_t *maps = NULL;
    char why[700];
    ahl_err_clear(&err);
    if (!j)
        return false;
    pthread_mutex_init(&j->mu, NULL);
    int rc = lease_tx(r, call_claim, &j->rec);
    if (rc < 0) {
        if (rc != AHL_ENOTFOUND)
            ahl_error("import jobs: cannot claim a job: %s", ahl_strerror(rc));
        job_free(j);
        return false;
    }
    if (j->rec.attempts > r->max_attempts) {
        snprintf(why, sizeof why,
                 "the job was started %u times and each time the node running it stopped before "
                 "it ended; it is not started again",
                 j->rec.attempts - 1);
        ahl_warn("import job %s: failed: %s", j->rec.id, why);
        job_release(r, &j->rec, AHL_JOB_FAILED, why);
        job_free(j);
        return true;
    }
    ahl_info("import job %s: started on node %s, attempt %u (%s -> %s)", j->rec.id, r->node,
             j->rec.attempts, j->rec.input_uri, j->rec.output_uri);
    pthread_mutex_lock(&r->mu);
    j->listing = true;
    j->held_until_ns = ahl_mono_ns() + (uint64_t)r->lease_ms * 1000000u;
    j->renew_at_ns = ahl_mono_ns() + (uint64_t)r->renew_ms * 1000000u;
    j->next_run = r->running;
    r->running = j; /* from now on the heartbeat renews its lease */
    pthread_cond_broadcast(&r->hb_cv);
    pthread_mutex_unlock(&r->mu);

    why[0] = '\0';
    if (ahl_s3_uri_parse(j->rec.input_uri, &j->in, &err) < 0 ||
        ahl_s3_uri_parse(j->rec.output_uri, &j->out, &err) < 0) {
        snprintf(why, sizeof why, "%s", err.msg);
        goto out;
    }
    if (job_options(r, j, &maps, why, sizeof why) < 0)
        goto out;
    if (j->owner[0] && r->s3_root[0] && strcmp(j->owner, r->account) != 0) {
        snprintf(why, sizeof why,
                 "the input bucket %.100s is owned by account %s, not by the "
                 "inputOwnerAccountId %s",
                 j->in.bucket, r->account, j->owner);
        goto out;
    }
    if (open_objstore(r, j->owner, &os, &err) < 0 ||
        ahl_objstore_list(os, j->in.bucket, j->in.prefix, on_object, j, &err) < 0) {
        if (err.code == AHL_EDENIED && j->owner[0])
            snprintf(why, sizeof why,
                     "cannot list %.200s: the bucket is not owned by the "
                     "inputOwnerAccountId %s, or access to it is denied: %.300s",
                     j->rec.input_uri, j->owner, err.msg);
        else
            snprintf(why, sizeof why, "cannot list %.200s: %.400s", j->rec.input_uri,
                     err.msg[0] ? err.msg : "too many objects");
        goto out;
    }
    if (job_quotas(r, j, why, sizeof why) < 0 ||
        (maps && load_mappings(r, j, os, maps, why, sizeof why) < 0))
        goto out;
    struct ahl_import_opts o = {.frames = &r->fs,
                                .lock_dir = r->data_dir,
                                .tmp_dir = r->tmp,
                                .budget = &r->budget,
                                .mappings = j->mappings};
    if (ahl_importer_open(r->meta, j->rec.datastore_id, &o, &j->im, &err) < 0 ||
        ahl_import_batch_new(j->im, on_imported, j, &j->batch) < 0) {
        snprintf(why, sizeof why, "%s", err.msg[0] ? err.msg : "out of memory");
        goto out;
    }
out:
    json_decref(maps);
    ahl_objstore_close(os);
    pthread_mutex_lock(&r->mu);
    bool lost = j->lost;
    if (why[0] || lost) {
        unlink_job(r, j);
        pthread_mutex_unlock(&r->mu);
        if (!lost) {
            ahl_warn("import job %s: failed: %s", j->rec.id, why);
            job_release(r, &j->rec, AHL_JOB_FAILED, why);
        }
        job_free(j);
        return true;
    }
    j->listing = false; /* its objects are for any idle worker; none: it is finished at once */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return true;
}

/* ---- workers and heartbeat ---------------------------------------------------------------- */

/* Whether the runner acts as if suspended (ahl_runner_freeze): asked to, and holding a job. Runner
 * lock held. */
static bool frozen(const struct ahl_runner *r)
{
    return r->frozen && r->running;
}

static void *worker(void *arg)
{
    struct ahl_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (frozen(r)) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        /* A job whose objects are all done (or that was lost): this worker finishes it. */
        struct job_run *j = r->running;
        while (j && (j->listing || j->helpers || (!j->lost && j->next < j->n)))
            j = j->next_run;
        if (j) {
            unlink_job(r, j);
            pthread_mutex_unlock(&r->mu);
            job_finish(r, j);
            pthread_mutex_lock(&r->mu);
            continue;
        }
        /* Help a running job with its next object, while its lease surely holds: past that
         * (the process was suspended, the database slow to answer) the heartbeat is asked to
         * renew first, and finds out whether the job is still this node's. */
        uint64_t now = ahl_mono_ns();
        j = r->running;
        while (j && (j->listing || j->lost || j->next >= j->n || j->held_until_ns <= now)) {
            if (!j->listing && !j->lost && j->next < j->n && j->renew_at_ns > now) {
                j->renew_at_ns = now;
                pthread_cond_broadcast(&r->hb_cv);
            }
            j = j->next_run;
        }
        if (j) {
            size_t i = j->next++;
            j->helpers++;
            pthread_mutex_unlock(&r->mu);
            import_object(r, j, i);
            pthread_mutex_lock(&r->mu);
            j->helpers--;
            continue;
        }
        /* Idle: claim a job when one was submitted here, and every poll_ms anyway (jobs
         * submitted to other nodes, jobs whose node died). One worker looks at a time. */
        uint64_t poll_ns = (uint64_t)r->poll_ms * 1000000u;
        if (r->claims_wanted || now - r->last_claim_ns >= poll_ns) {
            if (r->claims_wanted)
                r->claims_wanted--;
            r->last_claim_ns = now;
            pthread_mutex_unlock(&r->mu);
            bool claimed = job_start(r);
            pthread_mutex_lock(&r->mu);
            if (claimed && r->claims_wanted < r->claims_max)
                r->claims_wanted++; /* there may be more */
            continue;
        }
        struct timespec ts =
            ahl_deadline(CLOCK_REALTIME, (r->last_claim_ns + poll_ns - now) / 1000 + 1);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Renews the lease of every job this node holds every renew_ms (a failed renewal is tried again
 * after a quarter of that). */
static void *heartbeat(void *arg)
{
    struct ahl_runner *r = arg;
    uint64_t renew_ns = (uint64_t)r->renew_ms * 1000000u;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        uint64_t now = ahl_mono_ns(), due = renew_ns;
        struct job_run *j = NULL;
        if (!frozen(r))
            for (struct job_run *k = r->running; k && !j; k = k->next_run) {
                if (k->lost || k->renewing)
                    continue;
                if (k->renew_at_ns <= now)
                    j = k;
                else if (k->renew_at_ns - now < due)
                    due = k->renew_at_ns - now;
            }
        if (j) {
            j->renewing = true;
            pthread_mutex_unlock(&r->mu);
            int rc = job_renew(r, j);
            pthread_mutex_lock(&r->mu);
            j->renewing = false;
            j->renew_at_ns = ahl_mono_ns() + (rc == 0 ? renew_ns : renew_ns / 4);
            pthread_cond_broadcast(&r->cv);
            continue;
        }
        struct timespec ts = ahl_deadline(CLOCK_REALTIME, due / 1000 + 1);
        pthread_cond_timedwait(&r->hb_cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- start and stop ----------------------------------------------------------------------- */

/* This process's node id: host name, process id and 32 random bits, e.g. "db7.example-4182-9c0e51a2". */
static void make_node_id(char *out, size_t cap)
{
    char host[256] = "";
    uint32_t rnd = 0;
    if (gethostname(host, sizeof host) < 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    if (ahl_random_bytes(&rnd, sizeof rnd) < 0)
        rnd = (uint32_t)ahl_mono_ns();
    snprintf(out, cap, "%.64s-%ld-%08x", host, (long)getpid(), (unsigned)rnd);
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
    if (cfg->node_id && (!cfg->node_id[0] || strlen(cfg->node_id) > AHL_NODE_ID_MAX))
        return ahl_fail(err, AHL_EINVAL, "a node id has 1 to %d characters", AHL_NODE_ID_MAX);
    if (!(r = calloc(1, sizeof *r)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    r->meta = cfg->meta;
    r->store = ahl_meta_store(cfg->meta);
    r->poll_ms = cfg->poll_ms ? cfg->poll_ms : 2000;
    r->lease_ms = cfg->lease_ms ? cfg->lease_ms : AHL_RUNNER_LEASE_MS;
    r->renew_ms = cfg->renew_ms ? cfg->renew_ms : (r->lease_ms / 3 ? r->lease_ms / 3 : 1);
    r->max_attempts = cfg->max_attempts ? cfg->max_attempts : AHL_RUNNER_MAX_ATTEMPTS;
    if (cfg->node_id)
        snprintf(r->node, sizeof r->node, "%s", cfg->node_id);
    else
        make_node_id(r->node, sizeof r->node);
    snprintf(r->data_dir, sizeof r->data_dir, "%s", cfg->data_dir);
    snprintf(r->tmp, sizeof r->tmp, "%s/tmp", cfg->data_dir);
    snprintf(r->s3_root, sizeof r->s3_root, "%s", cfg->s3_root ? cfg->s3_root : "");
    snprintf(r->s3_endpoint, sizeof r->s3_endpoint, "%s", cfg->s3_endpoint ? cfg->s3_endpoint : "");
    snprintf(r->account, sizeof r->account, "%s",
             cfg->account_id ? cfg->account_id : AHL_RUNNER_ACCOUNT_ID);
    r->max_files = cfg->max_files ? cfg->max_files : AHL_RUNNER_MAX_FILES;
    r->max_bytes = cfg->max_bytes ? cfg->max_bytes : AHL_RUNNER_MAX_BYTES;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->hb_cv, NULL);
    ahl_import_budget_init(&r->budget, cfg->memory_budget);
    if (r->renew_ms >= r->lease_ms) {
        int rc = ahl_fail(err, AHL_EINVAL, "the lease renewal period (%u ms) must be shorter than "
                          "the lease (%u ms)", r->renew_ms, r->lease_ms);
        ahl_runner_stop(r);
        return rc;
    }
    if (mkdir(r->tmp, 0700) < 0 && errno != EEXIST) {
        int rc = ahl_fail(err, AHL_EIO, "cannot create %s: %s", r->tmp, strerror(errno));
        ahl_runner_stop(r);
        return rc;
    }
    int rc = ahl_framestore_open_dir(&r->fs, r->data_dir, cfg->blob_store, cfg->blob_endpoint,
                                     false, err);
    if (rc < 0) {
        ahl_runner_stop(r);
        return rc;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cfg->workers ? cfg->workers : (ncpu > 0 ? (unsigned)ncpu : 2);
    if (!(r->threads = calloc(n, sizeof *r->threads))) {
        ahl_runner_stop(r);
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    /* The first claim comes poll_ms after start, once the caller has finished starting up (the
     * API server opens the frame store, which sweeps temporary files). */
    r->last_claim_ns = ahl_mono_ns();
    r->claims_max = n;
    if (pthread_create(&r->heartbeat, NULL, heartbeat, r) != 0) {
        ahl_runner_stop(r);
        return ahl_fail(err, AHL_EINTERNAL, "cannot start the import jobs' heartbeat");
    }
    r->heartbeat_started = true;
    for (; r->nthreads < n; r->nthreads++)
        if (pthread_create(&r->threads[r->nthreads], NULL, worker, r) != 0)
            break;
    if (!r->nthreads) {
        ahl_runner_stop(r);
        return ahl_fail(err, AHL_EINTERNAL, "cannot start import workers");
    }
    ahl_info("import jobs: node %s, %u workers, lease %u ms renewed every %u ms, at most %u "
             "attempts", r->node, r->nthreads, r->lease_ms, r->renew_ms, r->max_attempts);
    *out = r;
    return 0;
}

const char *ahl_runner_node(const struct ahl_runner *r)
{
    return r->node;
}

void ahl_runner_freeze(struct ahl_runner *r, bool freeze)
{
    pthread_mutex_lock(&r->mu);
    r->frozen = freeze;
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&r->hb_cv);
    pthread_mutex_unlock(&r->mu);
}

void ahl_runner_stop(struct ahl_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&r->hb_cv);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    if (r->heartbeat_started)
        pthread_join(r->heartbeat, NULL);
    /* Jobs not finished: what their batches hold is committed, so the work done is kept, and each
     * is handed back (SUBMITTED, the attempt not counted) for the next node to run from the
     * start. */
    while (r->running) {
        struct job_run *j = r->running;
        r->running = j->next_run;
        if (j->batch)
            ahl_import_batch_flush(j->batch);
        if (!j->lost && job_release(r, &j->rec, AHL_JOB_SUBMITTED, NULL) == 0)
            ahl_info("import job %s: handed back unfinished; it runs again from the start",
                     j->rec.id);
        job_free(j);
    }
    free(r->threads);
    ahl_framestore_close(&r->fs);
    ahl_import_budget_release(&r->budget);
    pthread_cond_destroy(&r->hb_cv);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
