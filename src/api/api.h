/* The HealthImaging HTTP API server: what `ahilite serve` starts.
 *
 * One server owns a libmicrohttpd daemon with a pool of polling threads, the SigV4 verifier and the
 * credentials it trusts, and borrows the metadata engine (and through it the store) it serves.
 * Every request is authenticated, routed by method + path from the service model, decoded and
 * validated (codec.h), handed to one operation function (ops_*.c) and answered as restJson1, with
 * one log line: operation, status, duration.
 *
 * Calling sequence:
 *     struct ahl_api_config cfg = {.listen_host = "127.0.0.1", .port = 8080, ...};
 *     struct ahl_api_server *srv;
 *     if (ahl_api_server_start(&cfg, meta, &srv, &err) < 0) ...
 *     ... wait for SIGTERM / SIGINT ...
 *     ahl_api_server_stop(srv);       // finishes requests in flight, then frees everything
 *
 * Credentials: every access key / secret pair in cfg.credentials may sign requests; with
 * cfg.oidc_*, DICOMweb requests may instead carry an OIDC bearer token (oidc/oidc.h).
 * ahl_api_credentials_load() reads an AWS shared-credentials file (every profile's
 * aws_access_key_id / aws_secret_access_key pair); ahl_api_credentials_generate() makes a fresh
 * pair and writes it as such a file, mode 0600.
 */
#ifndef AHL_API_API_H
#define AHL_API_API_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "meta/meta.h"

#define AHL_API_MAX_CREDENTIALS 64

struct ahl_api_credential {
    char access_key[129];
    char secret_key[257];
};

struct ahl_api_credentials {
    struct ahl_api_credential keys[AHL_API_MAX_CREDENTIALS];
    size_t n;
};

/* Reads every profile of an AWS shared-credentials file ("[name]" sections with
 * aws_access_key_id / aws_secret_access_key). A profile with only one of the two, or a file with no
 * complete pair, is AHL_EPARSE with the line in err; an access key defined twice is AHL_ECONFLICT.
 * Logs a warning when the file is readable by its group or by every user. Appends to creds. */
int ahl_api_credentials_load(const char *path, struct ahl_api_credentials *creds,
                             struct ahl_err *err);
/* Adds one pair (AHL_ETOOBIG when full or too long, AHL_ECONFLICT when the access key is there
 * already). */
int ahl_api_credentials_add(struct ahl_api_credentials *creds, const char *access_key,
                            const char *secret_key);
/* Generates a random pair (AKIA + 16 upper-case characters, 40-character secret), writes it to path
 * as a shared-credentials file with the profile "default" (created exclusively, mode 0600) and adds
 * it to creds. */
int ahl_api_credentials_generate(const char *path, struct ahl_api_credentials *creds,
                                 struct ahl_err *err);

/* The default number of HTTP threads: a thread runs one request at a time, and the store's group
 * commit shares a commit only among updates in flight at once, so there are more threads than
 * CPUs (see docs/commands.md, --http-threads). */
#define AHL_API_THREADS_PER_CPU 4
#define AHL_API_MIN_THREADS 8
/* HealthImaging's default quota of concurrent import jobs per data store. */
#define AHL_API_JOB_MAX_CONCURRENT 100

struct ahl_api_config {
    const char *listen_host; /* numeric IPv4 or IPv6 address, or "localhost" */
    uint16_t port;           /* 0: any free port (see ahl_api_server_port) */
    const char *region;      /* signing region and ARN region */
    const char *account_id;  /* 12 digits, for ARNs */
    const char *s3_root;     /* local buckets for import jobs, or NULL */
    const char *s3_endpoint; /* S3-compatible endpoint for import jobs, or NULL */
    unsigned workers;        /* polling threads; 0: AHL_API_THREADS_PER_CPU per CPU, at least
                              * AHL_API_MIN_THREADS */
    const char *data_dir;    /* the data directory (frames live in DATA_DIR/frames) */
    const char *blob_store;  /* s3://bucket/prefix: frames there, on blob_endpoint; NULL: files */
    const char *blob_endpoint; /* the S3 endpoint of blob_store */
    /* Import-job runner hook (see ahl_api_service); NULL: jobs are recorded but not run. */
    void (*job_submitted)(void *ctx, const struct ahl_job_rec *job);
    void *job_ctx;
    /* StartDICOMImportJob refuses a job (ServiceQuotaExceededException) while its data store has
     * this many SUBMITTED or IN_PROGRESS; 0: AHL_API_JOB_MAX_CONCURRENT. */
    unsigned job_max_concurrent;
    const struct ahl_api_credentials *credentials; /* copied */
    /* Connection limits (0 in any: its default, AHL_API_DEFAULT_*). */
    unsigned max_connections;        /* open connections in all */
    unsigned max_connections_per_ip; /* from one client address; see no_per_ip_limit */
    int no_per_ip_limit;             /* 1: no per-address limit (behind a proxy) */
    unsigned header_timeout_s; /* from a request's first line to the end of its headers */
    unsigned idle_timeout_s;   /* a connection with nothing sent or received (keep-alive too) */
    size_t max_body_memory;    /* bytes of request bodies held at once, all connections */
    /* Bearer tokens on DICOMweb resources (docs/dicomweb.md#bearer-tokens): all three, or none
     * (bearer tokens refused). The JWKS file is re-read when it changes. */
    const char *oidc_jwks;
    const char *oidc_issuer;
    const char *oidc_audience;
    /* The viewer (docs/dicomweb.md#viewer): a build's directory served at /viewer/ without
     * authentication (NULL: no viewer), and the data store its configuration makes the default
     * (NULL: the first ACTIVE one). */
    const char *viewer_dir;
    const char *viewer_datastore;
    uint64_t max_stow_spool;   /* bytes of STOW-RS bodies spooled to disk at once */
    /* The viewer's OpenID client id at oidc_issuer: OHIF signs its users in there (NULL: the
     * viewer has no sign-in of its own). */
    const char *viewer_oidc_client_id;
    /* Bytes of rendered DICOMweb metadata answers kept (docs/dicomweb.md#performance);
     * 0: AHL_API_DEFAULT_DICOMWEB_CACHE, AHL_API_NO_DICOMWEB_CACHE: none. */
    size_t dicomweb_cache;
    /* Bytes of verified frames kept in memory for GetImageFrame (docs/frames.md#getimageframe);
     * 0: AHL_API_DEFAULT_FRAME_CACHE, AHL_API_NO_FRAME_CACHE: none. */
    size_t frame_cache;
};

#define AHL_API_DEFAULT_DICOMWEB_CACHE ((size_t)256 << 20)
#define AHL_API_NO_DICOMWEB_CACHE ((size_t)-1)
#define AHL_API_DEFAULT_FRAME_CACHE ((size_t)256 << 20)
#define AHL_API_NO_FRAME_CACHE ((size_t)-1)
#define AHL_API_DEFAULT_MAX_CONNECTIONS 1024
#define AHL_API_DEFAULT_MAX_CONNECTIONS_PER_IP 64
#define AHL_API_DEFAULT_HEADER_TIMEOUT_S 10
#define AHL_API_DEFAULT_IDLE_TIMEOUT_S 30
#define AHL_API_DEFAULT_MAX_BODY_MEMORY ((size_t)128 << 20)
#define AHL_API_DEFAULT_MAX_STOW_SPOOL ((uint64_t)4 << 30)

struct ahl_api_server;

/* Starts listening; returns once the daemon accepts connections. */
int ahl_api_server_start(const struct ahl_api_config *cfg, struct ahl_meta *meta,
                         struct ahl_api_server **out, struct ahl_err *err);
/* The port actually bound (useful with port 0). */
uint16_t ahl_api_server_port(const struct ahl_api_server *srv);
/* Stops accepting, waits for requests in flight, releases everything. NULL is accepted. */
void ahl_api_server_stop(struct ahl_api_server *srv);

/* Runs one request in-process, as the server runs it after authentication: route, decode and
 * validate, run the operation, and serialise a JSON response into body (a raw response's bytes
 * are appended instead). No HTTP and no SigV4: for benchmarks and tools that measure or drive the
 * operations themselves. 0, or a negative AHL_E* with err holding the AWS error. */
int ahl_api_invoke(struct ahl_meta *meta, const char *method, const char *path, const char *query,
                   const char *body, struct ahl_buf *response, struct ahl_err *err);

#endif /* AHL_API_API_H */
