/* The import-job runner: a pool of worker threads that runs the import jobs recorded by
 * StartDICOMImportJob (docs/import.md).
 *
 * Life of a job: a worker claims a SUBMITTED job (one write transaction moves it to IN_PROGRESS,
 * so two runners on one data directory never run the same job), lists every object under
 * inputS3Uri through the object store (objstore.h: local buckets under --s3-root or an S3
 * endpoint), and the objects are then imported by every idle worker, each object streamed to an
 * unlinked scratch file under DATA_DIR/tmp (memory does not grow with object or job size) and
 * prepared and committed with the import pipeline (import.h; instances of one series are committed
 * in batches, one version per batch). When the last object is done the job's outputs are written in
 * HealthImaging's layout,
 *     <outputS3Uri><datastoreId>-DicomImport-<jobId>/job-output-manifest.json
 *                                                   /SUCCESS/success.ndjson
 *                                                   /FAILURE/failure.ndjson
 *                                                   /WARNING/warning.ndjson
 * and the job becomes COMPLETED. A file that is not DICOM, is truncated, lacks UIDs or breaks an
 * import limit is a failure line, not a failed job; the job is FAILED only when it cannot run at
 * all (input not listable, data store gone, outputs not writable), with the reason in its message.
 *
 * Crash safety: a job found IN_PROGRESS when a runner starts was interrupted; it is put back to
 * SUBMITTED and run again from the start, which is safe because importing is idempotent
 * (unchanged instances make no new version).
 *
 * Calling sequence (what `ahilite serve` does):
 *     struct ahl_runner *r;
 *     struct ahl_runner_config rc = {.meta = meta, .data_dir = dir, .s3_root = root, .workers = 2};
 *     ahl_runner_start(&rc, &r, &err);
 *     api_config.job_submitted = ahl_runner_job_submitted; api_config.job_ctx = r;
 *     ...
 *     ahl_runner_stop(r);     // after the API server stopped
 */
#ifndef AHL_JOBS_RUNNER_H
#define AHL_JOBS_RUNNER_H

#include "base/err.h"
#include "meta/meta.h"
#include "store/store.h"

struct ahl_runner_config {
    struct ahl_meta *meta;
    const char *data_dir;    /* frames in DATA_DIR/frames, scratch files in DATA_DIR/tmp */
    const char *s3_root;     /* local buckets, or NULL */
    const char *s3_endpoint; /* an S3-compatible endpoint (credentials from the environment) */
    unsigned workers;        /* threads; 0: the number of CPUs */
    unsigned poll_ms;        /* how often the store is scanned for SUBMITTED jobs; 0: 2000 */
    /* Memory that frames being transcoded may take at once, all jobs together (import.h,
     * struct ahl_import_budget); 0: AHL_IMPORT_MEMORY_DEFAULT. */
    uint64_t memory_budget;
};

struct ahl_runner;

/* Resets interrupted (IN_PROGRESS) jobs to SUBMITTED and starts the workers, which pick up every
 * SUBMITTED job of every data store. Exactly one of s3_root / s3_endpoint must be given. */
int ahl_runner_start(const struct ahl_runner_config *cfg, struct ahl_runner **out,
                     struct ahl_err *err);

/* The API's job_submitted hook: wakes a worker for the new job (ctx is the runner). */
void ahl_runner_job_submitted(void *ctx, const struct ahl_job_rec *job);

/* Stops the workers after the objects they are importing; a job not finished stays IN_PROGRESS
 * and is run again by the next runner. Frees the runner. NULL is accepted. */
void ahl_runner_stop(struct ahl_runner *r);

#endif /* AHL_JOBS_RUNNER_H */
