/* ahilite serve: run the HealthImaging API server on a data directory until SIGTERM or SIGINT.
 *
 * Credentials, in order: --credentials FILE (every profile's pair may sign); the environment pair
 * AHILITE_ACCESS_KEY_ID / AHILITE_SECRET_ACCESS_KEY; otherwise DATA_DIR/credentials, generated
 * (mode 0600) on first start and reused afterwards. The server says on stderr which one it uses.
 */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "base/clock.h"
#include "base/log.h"
#include "events/events.h"
#include "import/import.h"
#include "jobs/runner.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void expire_tombstones(struct ahl_meta *meta, int64_t retention_ms)
{
    struct ahl_meta_expire_stats st;
    struct ahl_err err;
    if (ahl_meta_tombstones_expire(meta, ahl_now_ms(), retention_ms, &st, &err) < 0)
        ahl_warn("removing expired tombstones: %s", err.msg);
    else if (st.imagesets || st.datastores)
        ahl_info("removed %llu deleted image set%s and %llu deleted data store%s past their "
                 "retention",
                 (unsigned long long)st.imagesets, st.imagesets == 1 ? "" : "s",
                 (unsigned long long)st.datastores, st.datastores == 1 ? "" : "s");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ahilite serve [OPTIONS]\n\n"
            "Serves the AWS HealthImaging API (medical-imaging, 2023-07-19) over HTTP, so that\n"
            "the AWS CLI and SDKs work against it with --endpoint-url / endpoint. Data-plane\n"
            "calls need the SDK's host prefix turned off: AWS_DISABLE_HOST_PREFIX_INJECTION=true\n"
            "(AWS CLI, boto3) or disableHostPrefix: true (JavaScript SDK v3).\n\n"
            "options:\n"
            "  --data-dir DIR      where data stores, image sets and jobs are kept\n"
            "                      (default ./ahilite-data; created if missing)\n"
            "  --database URI      keep data stores, image sets and jobs in this PostgreSQL\n"
            "                      database (postgresql://[USER@]HOST[:PORT]/DB[?...]; a\n"
            "                      password is best left to PGPASSWORD or ~/.pgpass) instead\n"
            "                      of SQLite in the data directory. Several servers may share\n"
            "                      one database (docs/deploy.md)\n"
            "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; [::1]:8080\n"
            "                      for IPv6)\n"
            "  --credentials FILE  AWS shared-credentials file; the key pair of every profile\n"
            "                      may sign requests. Without it and without the environment\n"
            "                      variables AHILITE_ACCESS_KEY_ID and AHILITE_SECRET_ACCESS_KEY,\n"
            "                      a key pair is generated on first start and stored in\n"
            "                      DIR/credentials (mode 0600)\n"
            "  --region R          the region requests are signed for and ARNs name\n"
            "                      (default us-east-1)\n"
            "  --account-id ID     the 12-digit account id in ARNs (default 123456789012)\n"
            "  --s3-root DIR       import jobs read s3://BUCKET/KEY from DIR/BUCKET/KEY\n"
            "                      (default: DATA_DIR/buckets, unless --s3-endpoint is given)\n"
            "  --s3-endpoint URL   import jobs read from and write to this S3-compatible\n"
            "                      endpoint instead (region and keys: AWS_REGION,\n"
            "                      AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)\n"
            "  --blob-store s3://BUCKET/PREFIX\n"
            "                      keep frames in this bucket of --s3-endpoint instead of\n"
            "                      DATA_DIR/frames (docs/frames.md#frames-on-s3); with\n"
            "                      --s3-root too, import jobs still use local buckets\n"
            "  --http-threads N    threads answering HTTP requests, each one request at a\n"
            "                      time (default: 4 per CPU, at least 8)\n"
            "  --workers N         import-job worker threads (default: the number of CPUs)\n"
            "  --job-lease-ms MS   how long this node holds an import job without renewing its\n"
            "                      lease; a node that stops renewing (dead, hung, cut off from\n"
            "                      the database) loses its jobs to the others after this long\n"
            "                      (default 30000)\n"
            "  --job-renew-ms MS   how often the lease of each job held is renewed; shorter\n"
            "                      than --job-lease-ms (default: a third of it)\n"
            "  --job-poll-ms MS    how often an idle node looks for jobs submitted to other\n"
            "                      nodes or whose lease expired (default 2000)\n"
            "  --job-max-attempts N\n"
            "                      a job whose node stopped before its end this many times is\n"
            "                      FAILED instead of started again (default 3)\n"
            "  --events-webhook URL\n"
            "                      POST each HealthImaging event (EventBridge's JSON) to this\n"
            "                      http(s) URL, in commit order, at least once, retrying with\n"
            "                      backoff while it fails (docs/events.md)\n"
            "  --events-file PATH  append each event to this file as one JSON line, fsync'd;\n"
            "                      with neither option no event is recorded\n"
            "  --events-max-backlog N\n"
            "                      events kept undelivered at most; beyond, the oldest are\n"
            "                      dropped and counted in the log (default 1000000)\n"
            "  --events-retry-max-ms MS\n"
            "                      the longest wait between retries of a failing sink\n"
            "                      (default 60000)\n"
            "  --gc-interval S     run the collector (`ahilite gc`) in the background every S\n"
            "                      seconds, in small transactions with pauses between them\n"
            "                      (default 3600; 0: never)\n"
            "  --gc-grace S        the collector keeps frames no version lists that were\n"
            "                      written less than S seconds ago, for imports not yet\n"
            "                      committed (default 86400)\n"
            "  --job-max-files N   an import job whose input holds more objects is FAILED\n"
            "                      (HealthImaging's quota; default 5000)\n"
            "  --job-max-mib N     an import job whose input holds more than N MiB is FAILED\n"
            "                      (HealthImaging's quota of 10 GB; default 10240)\n"
            "  --job-max-concurrent N\n"
            "                      StartDICOMImportJob answers ServiceQuotaExceededException\n"
            "                      while a data store has N jobs SUBMITTED or IN_PROGRESS\n"
            "                      (HealthImaging's quota; default 100)\n"
            "  --oidc-jwks FILE    accept OIDC bearer tokens (Authorization: Bearer <JWT>) on\n"
            "                      DICOMweb resources, signed by a key in this JWKS file (RSA\n"
            "                      and EC P-256; re-read when it changes). Give all three:\n"
            "  --oidc-issuer ISS   the issuer: the tokens' 'iss' claim, exactly\n"
            "  --oidc-audience AUD the audience: the tokens' 'aud' claim must be or hold it\n"
            "                      Tokens are RS256 or ES256 with exp and iat (at most 12\n"
            "                      hours old); scope 'ahilite:read' allows GET, 'ahilite:write'\n"
            "                      also POST. API operations take SigV4 only. Without these\n"
            "                      options bearer tokens are refused (docs/dicomweb.md)\n"
            "  --viewer DIR        serve the web viewer built in DIR at /viewer/, without\n"
            "                      authentication: the viewer reads the data through DICOMweb\n"
            "                      with a bearer token (docs/dicomweb.md#viewer); 'none': no\n"
            "                      viewer. Default, when it is there, the build scripts/setup\n"
            "                      installs: " AHL_VIEWER_DEFAULT_DIR "\n"
            "  --viewer-datastore ID\n"
            "                      the data store the viewer opens first (default: the first\n"
            "                      ACTIVE one by id; every ACTIVE one is offered)\n"
            "  --viewer-oidc-client-id ID\n"
            "                      the viewer signs its users in at --oidc-issuer as this\n"
            "                      OpenID client (authorization code with PKCE, scope 'openid\n"
            "                      ahilite:read', redirect URI http(s)://HOST/viewer/callback)\n"
            "                      and sends their access token to DICOMweb\n"
            "  --deleted-retention DAYS\n"
            "                      how long a deleted image set or data store stays visible\n"
            "                      as DELETED (GetImageSet, GetDatastore, ListDatastores)\n"
            "                      before it is gone; checked at start and by every\n"
            "                      background collection; 0: gone at the next check\n"
            "                      (default 30)\n"
            "  --aws-primary-rules apply today's AWS restrictions to primary image sets: no\n"
            "                      Patient- or Series-level updates and no forced changes on\n"
            "                      them (default: the API as first specified, any level\n"
            "                      editable and force allowed on every image set)\n"
            "\nlimits (what one client, a flood of them, or an import may hold):\n"
            "  --max-connections N open connections in all (default 1024; lowered to fit\n"
            "                      the open-file limit, with a warning)\n"
            "  --max-connections-per-ip N\n"
            "                      open connections from one client address (default 64;\n"
            "                      0: no limit, for use behind a proxy that has its own)\n"
            "  --header-timeout S  seconds a client has from its request line to the end of\n"
            "                      its headers (default 10)\n"
            "  --idle-timeout S    seconds a connection may send and receive nothing, between\n"
            "                      requests (keep-alive) or within one (default 30)\n"
            "  --max-body-memory MiB\n"
            "                      request bodies held at once, all connections together;\n"
            "                      past it, requests get a ThrottlingException (default 128)\n"
            "  --import-memory MiB memory that import jobs may spend decoding frames at once,\n"
            "                      all jobs and workers together (default 2048)\n"
            "  --max-stow-spool MiB\n"
            "                      disk that STOW-RS request bodies being received may take\n"
            "                      at once, in DIR/tmp; past it, requests get a\n"
            "                      ThrottlingException (default 4096)\n"
            "  --dicomweb-cache MiB\n"
            "                      DICOMweb metadata answers kept rendered (plain and gzip)\n"
            "                      and instances' frame lists, least recently used dropped\n"
            "                      first; 0: none (default 256)\n"
            "  --metadata-cache MiB\n"
            "                      GetImageSetMetadata's compressed groups of instances,\n"
            "                      least recently used dropped first; 0: none, bodies are\n"
            "                      spliced from each instance's own segment, about ten\n"
            "                      times larger (default 128)\n"
            "  --frame-cache MiB   frames kept in memory for GetImageFrame once read and\n"
            "                      checked, least recently used dropped first; 0: none, every\n"
            "                      request reads and hashes its frame file (default 256)\n"
            "  --commit-delay-us N how long a committing metadata update waits for updates\n"
            "                      still being computed to share its commit, in\n"
            "                      microseconds; 0: never waits (default 1000)\n"
            "\nstorage tiers (GetImageSet and SearchImageSets report storageTier):\n"
            "  --access-flush-s S  how often the reads recorded as accesses (GetImageFrame,\n"
            "                      GetImageSetMetadata, DICOMweb retrieve; held in memory, a\n"
            "                      day's resolution) are written, in one transaction; also\n"
            "                      at shutdown (default 60)\n"
            "  --archive-days N    days without an access after which an image set is in\n"
            "                      ARCHIVE_INSTANT_ACCESS (default 30)\n"
            "\nlogging (to stderr, one line per request; errors with their type and message):\n"
            "  --log-level L       debug, info, warn or error: lines below it are dropped\n"
            "                      (default info; warn keeps the failed requests' lines,\n"
            "                      4xx and 5xx, and drops the others)\n"
            "\n"
            "  --help              this text\n");
}

static int parse_listen(const char *s, char *host, size_t cap, unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || e[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(e - h);
        colon = e + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= cap)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || errno || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

static int all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Whether clients can reach host only from this machine. */
static bool is_loopback(const char *host)
{
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

int ahl_cmd_serve(int argc, char **argv)
{
    const char *data_dir = "./ahilite-data", *listen_arg = "127.0.0.1:8080", *database = NULL;
    const char *cred_file = NULL, *region = "us-east-1", *account = "123456789012";
    const char *s3_root = NULL, *s3_endpoint = NULL, *blob_store = NULL;
    const char *oidc_jwks = NULL, *oidc_issuer = NULL, *oidc_audience = NULL;
    const char *viewer = NULL, *viewer_ds = NULL, *viewer_client = NULL;
    unsigned workers = 0, http_threads = 0, port = 0;
    unsigned max_conns = 0, per_ip = 0, header_s = 0, idle_s = 0;
    unsigned job_lease_ms = 0, job_renew_ms = 0, job_poll_ms = 0, job_max_attempts = 0;
    unsigned gc_interval_s = AHL_GC_INTERVAL_S, gc_grace_s = AHL_GC_GRACE_S;
    struct ahl_gc_background *gc = NULL;
    unsigned job_max_files = 0, job_max_mib = 0, job_max_concurrent = 0;
    unsigned deleted_days = AHL_DELETED_RETENTION_DAYS;
    unsigned long body_mib = 0, import_mib = 0, spool_mib = 0;
    long cache_mib = -1, frame_cache_mib = -1, commit_delay_us = -1; /* -1: the default */
    int no_per_ip = 0;
    char host[256], cred_path[4096];
    static struct ahl_api_credentials creds; /* large; one per process */
    struct ahl_store *store = NULL;
    struct ahl_meta *meta = NULL;
    struct ahl_meta_opts meta_opts = {.access_flush_ms = 60 * 1000};
    struct ahl_api_server *srv = NULL;
    struct ahl_runner *runner = NULL;
    struct ahl_events *events = NULL;
    struct ahl_events_opts ev_opts = {0};
    struct ahl_err err;
    int status = 1, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--aws-primary-rules")) {
            meta_opts.aws_primary_rules = true;
            continue;
        }
        static const char *const with_value[] = {
            "--data-dir",
            "--database",
            "--listen",
            "--credentials",
            "--region",
            "--account-id",
            "--s3-root",
            "--s3-endpoint",
            "--blob-store",
            "--workers",
            "--http-threads",
            "--max-connections",
            "--max-connections-per-ip",
            "--header-timeout",
            "--idle-timeout",
            "--max-body-memory",
            "--import-memory",
            "--oidc-jwks",
            "--oidc-issuer",
            "--oidc-audience",
            "--viewer",
            "--viewer-datastore",
            "--max-stow-spool",
            "--viewer-oidc-client-id",
            "--dicomweb-cache",
            "--metadata-cache",
            "--commit-delay-us",
            "--frame-cache",
            "--job-lease-ms",
            "--job-renew-ms",
            "--job-poll-ms",
            "--job-max-attempts",
            "--events-webhook",
            "--events-file",
            "--events-max-backlog",
            "--events-retry-max-ms",
            "--access-flush-s",
            "--archive-days",
            "--gc-interval",
            "--gc-grace",
            "--job-max-files",
            "--job-max-mib",
            "--job-max-concurrent",
            "--deleted-retention",
            "--log-level",
            NULL,
        };
        const char *name = NULL;
        for (int k = 0; with_value[k]; k++) {
            size_t n = strlen(with_value[k]);
            if (!strncmp(a, with_value[k], n) && (a[n] == '\0' || a[n] == '=')) {
                name = with_value[k];
                v = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
                break;
            }
        }
        if (!name) {
            fprintf(stderr, "ahilite serve: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        if (!v || !*v) {
            fprintf(stderr, "ahilite serve: %s needs a value\n", name);
            return 2;
        }
        if (!strcmp(name, "--data-dir"))
            data_dir = v;
        else if (!strcmp(name, "--database"))
            database = v;
        else if (!strcmp(name, "--listen"))
            listen_arg = v;
        else if (!strcmp(name, "--credentials"))
            cred_file = v;
        else if (!strcmp(name, "--region"))
            region = v;
        else if (!strcmp(name, "--account-id"))
            account = v;
        else if (!strcmp(name, "--s3-root"))
            s3_root = v;
        else if (!strcmp(name, "--s3-endpoint"))
            s3_endpoint = v;
        else if (!strcmp(name, "--blob-store"))
            blob_store = v;
        else if (!strcmp(name, "--oidc-jwks"))
            oidc_jwks = v;
        else if (!strcmp(name, "--oidc-issuer"))
            oidc_issuer = v;
        else if (!strcmp(name, "--oidc-audience"))
            oidc_audience = v;
        else if (!strcmp(name, "--viewer"))
            viewer = v;
        else if (!strcmp(name, "--viewer-datastore"))
            viewer_ds = v;
        else if (!strcmp(name, "--viewer-oidc-client-id"))
            viewer_client = v;
        else if (!strcmp(name, "--events-webhook"))
            ev_opts.webhook_url = v;
        else if (!strcmp(name, "--events-file"))
            ev_opts.file_path = v;
        else if (!strcmp(name, "--log-level")) {
            static const char *const levels[] = {"debug", "info", "warn", "error"};
            static const enum ahl_log_level as[] = {AHL_LOG_DEBUG, AHL_LOG_INFO, AHL_LOG_WARN,
                                                    AHL_LOG_ERROR};
            size_t k = 0;
            while (k < 4 && strcmp(v, levels[k]))
                k++;
            if (k == 4) {
                fprintf(stderr,
                        "ahilite serve: --log-level takes debug, info, warn or error, "
                        "not '%.32s'\n",
                        v);
                return 2;
            }
            ahl_log_set_level(as[k]);
        } else if (!strcmp(name, "--workers") || !strcmp(name, "--http-threads")) {
            char *end;
            unsigned long w = strtoul(v, &end, 10);
            if (*end || w == 0 || w > 1024) {
                fprintf(stderr, "ahilite serve: %s takes a number from 1 to 1024\n", name);
                return 2;
            }
            *(name[2] == 'w' ? &workers : &http_threads) = (unsigned)w;
        } else {
            /* The limits: whole numbers in a range each. */
            static const struct {
                const char *name;
                unsigned long min, max;
            } limits[] = {
                {"--max-connections", 16, 1000000},
                {"--max-connections-per-ip", 0, 1000000},
                {"--header-timeout", 1, 3600},
                {"--idle-timeout", 1, 86400},
                {"--max-body-memory", 2, 1024 * 1024},
                {"--import-memory", 64, 1024 * 1024},
                {"--max-stow-spool", 1, 1024 * 1024 * 1024},
                {"--dicomweb-cache", 0, 1024 * 1024},
                {"--metadata-cache", 0, 1024 * 1024},
                {"--frame-cache", 0, 1024 * 1024},
                {"--commit-delay-us", 0, 1000000},
                {"--job-lease-ms", 100, 86400000},
                {"--job-renew-ms", 10, 86400000},
                {"--job-poll-ms", 10, 3600000},
                {"--job-max-attempts", 1, 1000},
                {"--events-max-backlog", 1, 1000000000},
                {"--events-retry-max-ms", 100, 86400000},
                {"--access-flush-s", 1, 86400},
                {"--archive-days", 1, 36500},
                {"--gc-interval", 0, 30 * 86400},
                {"--gc-grace", 0, 365 * 86400},
                {"--job-max-files", 1, 1000000},
                {"--job-max-mib", 1, 1024 * 1024},
                {"--job-max-concurrent", 1, 1000000},
                {"--deleted-retention", 0, 36500},
            };
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            size_t k = 0;
            while (strcmp(limits[k].name, name))
                k++;
            if (*end || *v == '-' || n < limits[k].min || n > limits[k].max) {
                fprintf(stderr, "ahilite serve: %s takes a number from %lu to %lu\n", name,
                        limits[k].min, limits[k].max);
                return 2;
            }
            if (k == 0)
                max_conns = (unsigned)n;
            else if (k == 1) {
                per_ip = (unsigned)n;
                no_per_ip = n == 0;
            } else if (k == 2)
                header_s = (unsigned)n;
            else if (k == 3)
                idle_s = (unsigned)n;
            else if (k == 4)
                body_mib = n;
            else if (k == 5)
                import_mib = n;
            else if (k == 6)
                spool_mib = n;
            else if (k == 7)
                cache_mib = (long)n;
            else if (k == 8)
                meta_opts.gzip_cache_bytes = n ? (size_t)n << 20 : AHL_META_NO_GZIP_CACHE;
            else if (k == 9)
                frame_cache_mib = (long)n;
            else if (k == 10)
                commit_delay_us = (long)n;
            else if (k == 11)
                job_lease_ms = (unsigned)n;
            else if (k == 12)
                job_renew_ms = (unsigned)n;
            else if (k == 13)
                job_poll_ms = (unsigned)n;
            else if (k == 14)
                job_max_attempts = (unsigned)n;
            else if (k == 15)
                ev_opts.max_backlog = n;
            else if (k == 16)
                ev_opts.retry_max_ms = (unsigned)n;
            else if (k == 17)
                meta_opts.access_flush_ms = (unsigned)n * 1000;
            else if (k == 18)
                meta_opts.archive_days = (unsigned)n;
            else if (!strcmp(name, "--gc-interval"))
                gc_interval_s = (unsigned)n;
            else if (!strcmp(name, "--gc-grace"))
                gc_grace_s = (unsigned)n;
            else if (!strcmp(name, "--job-max-files"))
                job_max_files = (unsigned)n;
            else if (!strcmp(name, "--job-max-mib"))
                job_max_mib = (unsigned)n;
            else if (!strcmp(name, "--job-max-concurrent"))
                job_max_concurrent = (unsigned)n;
            else
                deleted_days = (unsigned)n;
        }
    }
    if (parse_listen(listen_arg, host, sizeof host, &port) < 0) {
        fprintf(stderr, "ahilite serve: --listen takes HOST:PORT, not '%s'\n", listen_arg);
        return 2;
    }
    if (!all_digits(account, 12)) {
        fprintf(stderr, "ahilite serve: --account-id takes 12 digits, not '%s'\n", account);
        return 2;
    }
    for (const char *p = region; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') ||
            p - region > 40) {
            fprintf(stderr, "ahilite serve: --region '%s' is not a region name\n", region);
            return 2;
        }
    }
    if ((oidc_jwks || oidc_issuer || oidc_audience) &&
        !(oidc_jwks && oidc_issuer && oidc_audience)) {
        fprintf(stderr,
                "ahilite serve: --oidc-jwks, --oidc-issuer and --oidc-audience go together; "
                "give all three to accept bearer tokens\n");
        return 2;
    }
    if (viewer_ds && (strlen(viewer_ds) != 32 ||
                      strspn(viewer_ds, "0123456789abcdefghijklmnopqrstuvwxyz") != 32)) {
        fprintf(stderr,
                "ahilite serve: --viewer-datastore takes a data store id (32 characters "
                "of 0-9 and a-z), not '%s'\n",
                viewer_ds);
        return 2;
    }
    if (viewer_client && !oidc_issuer) {
        fprintf(stderr, "ahilite serve: --viewer-oidc-client-id needs --oidc-jwks, --oidc-issuer "
                        "and --oidc-audience: the viewer's tokens are verified with them\n");
        return 2;
    }
    /* The viewer: the one given, else setup's install when it is there (a build of the viewer
     * has an index.html), else none. */
    if (viewer && !strcmp(viewer, "none"))
        viewer = NULL;
    else if (!viewer && access(AHL_VIEWER_DEFAULT_DIR "/index.html", R_OK) == 0)
        viewer = AHL_VIEWER_DEFAULT_DIR;
    if (s3_root && s3_endpoint && !blob_store) {
        fprintf(stderr, "ahilite serve: give --s3-root or --s3-endpoint, not both\n");
        return 2;
    }
    if (blob_store && !s3_endpoint) {
        fprintf(stderr, "ahilite serve: --blob-store needs --s3-endpoint URL (the endpoint "
                        "holding the bucket)\n");
        return 2;
    }
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "ahilite serve: cannot create %s: %s\n", data_dir, strerror(errno));
        return 1;
    }

    /* Without an S3 endpoint, import jobs read local buckets: by default a folder of the data
     * directory, so a fresh server can import without any further setting. */
    char default_root[4096];
    if (!s3_root && !s3_endpoint) {
        snprintf(default_root, sizeof default_root, "%s/buckets", data_dir);
        if (mkdir(default_root, 0700) < 0 && errno != EEXIST) {
            fprintf(stderr, "ahilite serve: cannot create %s: %s\n", default_root, strerror(errno));
            return 1;
        }
        s3_root = default_root;
    }
    /* With --blob-store, --s3-endpoint is where the frames are; import jobs still read local
     * buckets when --s3-root is given too. */
    const char *jobs_endpoint = s3_root ? NULL : s3_endpoint;

    /* Credentials. */
    const char *env_key = getenv("AHILITE_ACCESS_KEY_ID");
    const char *env_secret = getenv("AHILITE_SECRET_ACCESS_KEY");
    if (cred_file) {
        if (ahl_api_credentials_load(cred_file, &creds, &err) < 0) {
            fprintf(stderr, "ahilite serve: %s\n", err.msg);
            return 1;
        }
        ahl_info("accepting the %zu key pair%s of %s", creds.n, creds.n == 1 ? "" : "s", cred_file);
    } else if (env_key && *env_key && env_secret && *env_secret) {
        if (ahl_api_credentials_add(&creds, env_key, env_secret) < 0) {
            fprintf(stderr, "ahilite serve: AHILITE_ACCESS_KEY_ID/SECRET too long\n");
            return 1;
        }
        ahl_info("accepting the key pair from AHILITE_ACCESS_KEY_ID");
    } else {
        snprintf(cred_path, sizeof cred_path, "%s/credentials", data_dir);
        if (access(cred_path, F_OK) == 0) {
            if (ahl_api_credentials_load(cred_path, &creds, &err) < 0) {
                fprintf(stderr, "ahilite serve: %s\n", err.msg);
                return 1;
            }
            ahl_info("accepting the key pair in %s", cred_path);
        } else {
            if (ahl_api_credentials_generate(cred_path, &creds, &err) < 0) {
                fprintf(stderr, "ahilite serve: %s\n", err.msg);
                return 1;
            }
            ahl_info("generated a key pair in %s (use it as an AWS credentials file: "
                     "AWS_SHARED_CREDENTIALS_FILE=%s)",
                     cred_path, cred_path);
        }
    }

    /* Blocked before any thread starts (the store's checkpointer is the first), so that every
     * thread inherits the mask and the signals reach only sigwait below: a SIGTERM arriving
     * before the main thread waits would otherwise kill the process from another thread. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    if ((rc = ahl_store_open(database, data_dir, 0, &store)) < 0) {
        fprintf(stderr, "ahilite serve: cannot open the store %s%s: %s\n",
                database ? "on " : "in ", database ? "PostgreSQL" : data_dir, ahl_strerror(rc));
        goto out;
    }
    if (commit_delay_us >= 0)
        ahl_store_sqlite_set_commit_delay_us(store, (unsigned)commit_delay_us);
    if ((rc = ahl_meta_open(store, &meta_opts, &meta)) < 0) {
        fprintf(stderr, "ahilite serve: cannot open the metadata engine: %s\n", ahl_strerror(rc));
        goto out;
    }
    /* Events are written from the first change on, and only with a sink to deliver them
     * (docs/events.md). */
    if (ev_opts.webhook_url || ev_opts.file_path) {
        ev_opts.account_id = account;
        ev_opts.region = region;
        ahl_store_outbox_enable(store, true);
        if (ahl_events_start(store, &ev_opts, &events, &err) < 0) {
            fprintf(stderr, "ahilite serve: %s\n", err.msg);
            goto out;
        }
        /* The webhook's query may hold a secret: not logged. */
        const char *hook = ev_opts.webhook_url ? ev_opts.webhook_url : "";
        ahl_info("events to%s%.*s%s%s", ev_opts.webhook_url ? " " : "", (int)strcspn(hook, "?#"),
                 hook, ev_opts.file_path ? (ev_opts.webhook_url ? " and " : " ") : "",
                 ev_opts.file_path ? ev_opts.file_path : "");
    }

    struct ahl_api_config cfg = {
        .listen_host = host,
        .port = (uint16_t)port,
        .region = region,
        .account_id = account,
        .s3_root = s3_root,
        .s3_endpoint = jobs_endpoint,
        .workers = http_threads,
        .data_dir = data_dir,
        .blob_store = blob_store,
        .blob_endpoint = s3_endpoint,
        .credentials = &creds,
        .max_connections = max_conns,
        .max_connections_per_ip = per_ip,
        .no_per_ip_limit = no_per_ip,
        .header_timeout_s = header_s,
        .idle_timeout_s = idle_s,
        .max_body_memory = (size_t)body_mib << 20,
        .dicomweb_cache = cache_mib < 0    ? 0
                          : cache_mib == 0 ? AHL_API_NO_DICOMWEB_CACHE
                                           : (size_t)cache_mib << 20,
        .frame_cache = frame_cache_mib < 0    ? 0
                       : frame_cache_mib == 0 ? AHL_API_NO_FRAME_CACHE
                                              : (size_t)frame_cache_mib << 20,
        .oidc_jwks = oidc_jwks,
        .oidc_issuer = oidc_issuer,
        .oidc_audience = oidc_audience,
        .viewer_dir = viewer,
        .viewer_datastore = viewer_ds,
        .max_stow_spool = (uint64_t)spool_mib << 20,
        .viewer_oidc_client_id = viewer_client,
        .job_max_concurrent = job_max_concurrent,
    };
    struct ahl_runner_config rcfg = {.meta = meta,
                                     .data_dir = data_dir,
                                     .s3_root = s3_root,
                                     .s3_endpoint = jobs_endpoint,
                                     .blob_store = blob_store,
                                     .blob_endpoint = s3_endpoint,
                                     .workers = workers,
                                     .poll_ms = job_poll_ms,
                                     .lease_ms = job_lease_ms,
                                     .renew_ms = job_renew_ms,
                                     .max_attempts = job_max_attempts,
                                     .memory_budget = (uint64_t)import_mib << 20,
                                     .max_files = job_max_files,
                                     .max_bytes = (uint64_t)job_max_mib << 20,
                                     .account_id = account};
    if ((s3_root || jobs_endpoint) && ahl_runner_start(&rcfg, &runner, &err) < 0) {
        fprintf(stderr, "ahilite serve: %s\n", err.msg);
        goto out;
    }
    cfg.job_submitted = runner ? ahl_runner_job_submitted : NULL;
    cfg.job_ctx = runner;
    /* Imports commit well within the collector's grace (docs/decisions.md#gc-grace). */
    ahl_import_set_frame_refresh_ms((int64_t)gc_grace_s * 500);
    /* The tombstones past their retention go at start, then with every background collection
     * (docs/decisions.md#tombstones). */
    int64_t retention_ms = deleted_days ? (int64_t)deleted_days * 86400000 : 1;
    expire_tombstones(meta, retention_ms);
    if (gc_interval_s &&
        ahl_gc_background_start(meta, store, data_dir, blob_store, s3_endpoint, gc_interval_s,
                                (int64_t)gc_grace_s * 1000, retention_ms, &gc, &err) < 0) {
        fprintf(stderr, "ahilite serve: %s\n", err.msg);
        goto out;
    }
    if (ahl_api_server_start(&cfg, meta, &srv, &err) < 0) {
        fprintf(stderr, "ahilite serve: %s\n", err.msg);
        goto out;
    }
    ahl_info("listening on http://%s%s%s:%u (region %s, account %s, data in %s)",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
             (unsigned)ahl_api_server_port(srv), region, account, data_dir);
    if (blob_store)
        ahl_info("frames in %s on %s", blob_store, s3_endpoint);
    if (ahl_clock_offset_ms())
        ahl_warn("the server's clock is moved by %lld s (AHILITE_CLOCK_OFFSET)",
                 (long long)(ahl_clock_offset_ms() / 1000));
    if (oidc_jwks)
        ahl_info("accepting bearer tokens on DICOMweb resources from issuer %s for audience %s",
                 oidc_issuer, oidc_audience);
    if (!is_loopback(host))
        ahl_warn("listening on %s without TLS: requests, signatures' scope and patient data cross "
                 "the network in clear; put a TLS-terminating proxy in front of ahilite, or "
                 "listen on 127.0.0.1",
                 host);
    if (viewer)
        ahl_info("viewer at http://%s%s%s:%u/viewer/ (from %s)", strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", (unsigned)ahl_api_server_port(srv), viewer);
    else
        ahl_info("no viewer (--viewer DIR serves one at /viewer/)");

    int sig = 0;
    sigwait(&stop_signals, &sig);
    ahl_info("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;
out:
    ahl_api_server_stop(srv);
    ahl_runner_stop(runner);
    ahl_events_stop(events);
    ahl_gc_background_stop(gc);
    struct ahl_store_sqlite_stats st;
    if (store && ahl_store_sqlite_stats(store, &st) == 0 && st.commits)
        ahl_info("store: %llu commits of %llu write transactions wrote %llu database pages",
                 (unsigned long long)st.commits, (unsigned long long)st.write_txs,
                 (unsigned long long)st.wal_frames);
    ahl_meta_close(meta);
    ahl_store_close(store);
    return status;
}
