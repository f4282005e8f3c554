/* The import-job runner: a pool of worker threads that runs the import jobs recorded by
 * StartDICOMImportJob (docs/import.md), on any number of nodes (processes sharing one store).
 *
 * Life of a job: an idle worker claims the job submitted first among those waiting, in any data
 * store (ahl_store_job_claim: the job becomes IN_PROGRESS under a lease held by this node, for
 * lease_ms), lists every object under inputS3Uri through the object store (objstore.h: local
 * buckets under --s3-root or an S3 endpoint), and the objects are then imported by every idle
 * worker of this node, each object streamed to an unlinked scratch file under DATA_DIR/tmp
 * (memory does not grow with object or job size) and prepared and committed with the import
 * pipeline (import.h; instances of one series are committed in batches, one version per batch).
 * When the last object is done the lease is renewed once more (proof that this node still runs
 * the job), the job's outputs are written in HealthImaging's layout,
 *     <outputS3Uri><datastoreId>-DicomImport-<jobId>/job-output-manifest.json
 *                                                   /SUCCESS/success.ndjson
 *                                                   /FAILURE/failure.ndjson
 *                                                   /WARNING/warning.ndjson
 * each file whole, in one put, and the job becomes COMPLETED. A file that is not DICOM, is
 * truncated, lacks UIDs or breaks an import limit is a failure line, not a failed job; the job is
 * FAILED only when it cannot run at all (input not listable, data store gone, outputs not
 * writable), with the reason in its message.
 *
 * Leases. A heartbeat thread renews the lease of every job the node holds every renew_ms. A node
 * that dies, hangs or loses the database stops renewing; once its lease has expired, the next
 * claim of any node (idle workers look every poll_ms) takes the job over and runs it again from
 * the start, which is safe because importing is idempotent (unchanged instances make no new
 * version, frames are content-addressed) and the outputs are written only at the end. A node that
 * finds its lease taken over (a renewal answers AHL_ECONFLICT, or none succeeded for a whole
 * lease) stops the job: its workers take no more of its objects and it writes no output and no
 * status. Workers take an object only while the lease surely holds (less than lease_ms since the
 * start of the last renewal that succeeded); past that they wait for the heartbeat's answer. A job claimed more than max_attempts times (each earlier node stopped before the end,
 * e.g. a file that crashes the process) is FAILED with a message saying so instead of run again.
 * Stopping a runner hands its unfinished jobs back (SUBMITTED) without counting the attempt.
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
    const char *blob_store;  /* s3://bucket/prefix: frames there, on blob_endpoint; NULL: files */
    const char *blob_endpoint; /* the S3 endpoint of blob_store */
    unsigned workers;        /* threads; 0: the number of CPUs */
    unsigned poll_ms;        /* how often an idle node looks for a claimable job; 0: 2000 */
    /* Leases (see above): how long a claim or renewal holds a job (0: AHL_RUNNER_LEASE_MS), how
     * often the heartbeat renews (0: lease_ms / 3; must be shorter than lease_ms), how many
     * claims of one job are run before it is FAILED instead (0: AHL_RUNNER_MAX_ATTEMPTS). */
    unsigned lease_ms, renew_ms, max_attempts;
    /* This node's id in the leases (1..AHL_NODE_ID_MAX characters, unique among the nodes);
     * NULL: host name, process id and 32 random bits. Logged at start. */
    const char *node_id;
    /* Memory that frames being transcoded may take at once, all jobs together (import.h,
     * struct ahl_import_budget); 0: AHL_IMPORT_MEMORY_DEFAULT. */
    uint64_t memory_budget;
    /* HealthImaging's per-job quotas: a job whose input lists more objects, or more bytes in all,
     * is FAILED with a message naming the quota (0: AHL_RUNNER_MAX_FILES, AHL_RUNNER_MAX_BYTES). */
    unsigned max_files;
    uint64_t max_bytes;
    /* The server's account id (12 digits): the owner of every local bucket, which a job's
     * inputOwnerAccountId must name. NULL: AHL_RUNNER_ACCOUNT_ID. */
    const char *account_id;
};

#define AHL_RUNNER_LEASE_MS 30000
#define AHL_RUNNER_MAX_ATTEMPTS 3
#define AHL_RUNNER_MAX_FILES 5000
#define AHL_RUNNER_MAX_BYTES ((uint64_t)10 << 30)
#define AHL_RUNNER_ACCOUNT_ID "123456789012"

struct ahl_runner;

/* Starts the workers and the heartbeat; the workers claim jobs of every data store, the first
 * poll_ms after start. Exactly one of s3_root / s3_endpoint must be given. */
int ahl_runner_start(const struct ahl_runner_config *cfg, struct ahl_runner **out,
                     struct ahl_err *err);

/* The API's job_submitted hook: wakes a worker for the new job (ctx is the runner). */
void ahl_runner_job_submitted(void *ctx, const struct ahl_job_rec *job);

/* Stops the workers after the objects they are importing; a job not finished is handed back
 * (SUBMITTED) and run again from the start by the next node to claim it. Frees the runner. NULL is
 * accepted. */
void ahl_runner_stop(struct ahl_runner *r);

/* This node's id, as the leases of its jobs name it. */
const char *ahl_runner_node(const struct ahl_runner *r);

/* For tests of takeover: with freeze true, once the runner holds a job (at once, or after its
 * next claim and listing), it behaves as if its process were suspended: its workers take no more
 * objects and claim nothing, its heartbeat renews nothing, so another node takes its jobs over
 * when their leases expire. With false it resumes, and finds out, as a suspended process would,
 * which jobs it lost. */
void ahl_runner_freeze(struct ahl_runner *r, bool freeze);

#endif /* AHL_JOBS_RUNNER_H */
