/* The viewer's answers (docs/dicomweb.md#viewer): files of the viewer's directory,
 * app-config.js made from the ACTIVE data stores, and index.html for every extension-less path
 * that is not a file, the viewer's own routes (/viewer/viewer?StudyInstanceUIDs=…), which exist
 * only in the browser. The directory holds a build made for /viewer/ (viewer/prepare.mjs moves
 * OHIF's published build there).
 *
 * Files are sent from their descriptor, never read into memory. A file with a content hash in
 * its name is cached for good; everything else is revalidated (ETag, If-None-Match → 304). A
 * precompressed sibling (NAME.br, NAME.gz) is sent instead of NAME when the client accepts its
 * encoding. None of this needs authentication: these are the viewer's public assets, and the
 * viewer reaches the data through DICOMweb, which does.
 */
#include "api/viewer_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/ops_internal.h"
#include "base/log.h"
#include "base/text.h"
#include "store/store.h"
#include "base/banned.h"

/* Data stores offered as data sources, at most (AWS allows 10 per account and region). */
#define MAX_SOURCES 100

bool ahl__viewer_path(const char *target)
{
    size_t n = strlen(AHL__VIEWER_PREFIX);
    return !strncmp(target, AHL__VIEWER_PREFIX, n) &&
           (target[n] == '\0' || target[n] == '/' || target[n] == '?');
}

void ahl__viewer_answer_init(struct ahl__viewer_answer *a)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    ahl_buf_init(&a->body, AHL_BUF_UNLIMITED);
}

void ahl__viewer_answer_release(struct ahl__viewer_answer *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    ahl_buf_release(&a->body);
}

static int text_answer(struct ahl__viewer_answer *a, int status, const char *text)
{
    a->status = status;
    a->content_type = "text/plain; charset=utf-8";
    a->cache_control = "no-store";
    ahl_buf_reset(&a->body);
    return ahl_buf_adds(&a->body, text);
}

/* ---- app-config.js ------------------------------------------------------------------------- */

/* OHIF's configuration. Sources are made in the browser from the list, so that each DICOMweb
 * root is this page's own origin: right behind a TLS proxy, and never built from a Host header.
 * The study's metadata comes in one request (/studies/{study}/metadata: enableStudyLazyLoad
 * false), frames as stored (transfer-syntax=*, decoded in the browser). */
static const char config_head[] =
    "/* Made by ahilite serve for each request (docs/dicomweb.md#viewer): one DICOMweb data\n"
    " * source per ACTIVE data store, rooted at this server's /datastore/<id>. */\n"
    "(function () {\n"
    "  var stores = ";
static const char config_tail[] =
    ";\n"
    "  var origin = window.location.origin;\n"
    "  window.config = {\n"
    "    name: 'ahilite',\n"
    "    routerBasename: '/viewer',\n"
    "    showStudyList: true,\n"
    "    extensions: [],\n"
    "    modes: [],\n"
    "    customizationService: {},\n"
    "    maxNumberOfWebWorkers: 3,\n"
    "    showWarningMessageForCrossOrigin: false,\n"
    "    showCPUFallbackMessage: true,\n"
    "    showLoadingIndicator: true,\n"
    "    strictZSpacingForVolumeViewport: true,\n"
    "    investigationalUseDialog: { option: 'never' },\n"
    "    oidc: oidc,\n"
    "    defaultDataSourceName: stores.length ? stores[def][0] : undefined,\n"
    "    dataSources: stores.map(function (s) {\n"
    "      var root = origin + '/datastore/' + s[0];\n"
    "      return {\n"
    "        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',\n"
    "        sourceName: s[0],\n"
    "        configuration: {\n"
    "          friendlyName: s[1],\n"
    "          name: s[0],\n"
    "          wadoUriRoot: root,\n"
    "          qidoRoot: root,\n"
    "          wadoRoot: root,\n"
    "          qidoSupportsIncludeField: false,\n"
    "          imageRendering: 'wadors',\n"
    "          thumbnailRendering: 'wadors',\n"
    "          enableStudyLazyLoad: false,\n"
    "          supportsFuzzyMatching: false,\n"
    "          supportsWildcard: false,\n"
    "          bulkDataURI: { enabled: true },\n"
    "          omitQuotationForMultipartRequest: true,\n"
    "        },\n"
    "      };\n"
    "    }),\n"
    "  };\n"
    "})();\n";

int ahl__viewer_config(const struct ahl__viewer *v, const char *const *ids,
                       const char *const *names, size_t n, size_t def, struct ahl_buf *out)
{
    json_t *list = json_array(), *oidc = NULL;
    char *text = NULL, *oidc_text = NULL;
    int rc = AHL_ENOMEM;
    if (!list)
        return AHL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, json_pack("[ss]", ids[i], names[i])) < 0)
            goto out;
    /* OHIF's sign-in (authorization code with PKCE): its redirect URIs are relative to
     * routerBasename, so /viewer/callback and /viewer/silent-refresh.html. The access token it
     * gets is sent to DICOMweb as a bearer token (docs/dicomweb.md#viewer). */
    oidc = v && v->oidc_client_id[0]
               ? json_pack("[{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:b}]", "authority", v->oidc_issuer,
                           "client_id", v->oidc_client_id, "redirect_uri", "/callback",
                           "response_type", "code", "scope", "openid ahilite:read",
                           "post_logout_redirect_uri", "/", "automaticSilentRenew", 1,
                           "revokeAccessTokenOnSignout", 1)
               : json_null();
    /* ASCII only: the names are the users', and \u escapes keep U+2028 and the like inert. */
    text = json_dumps(list, JSON_COMPACT | JSON_ENSURE_ASCII);
    oidc_text = oidc ? json_dumps(oidc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY) : NULL;
    if (!text || !oidc_text)
        goto out;
    if (ahl_buf_adds(out, config_head) < 0 || ahl_buf_adds(out, text) < 0 ||
        ahl_buf_addf(out, ";\n  var def = %zu;\n  var oidc = %s", n ? def : 0, oidc_text) < 0 ||
        ahl_buf_adds(out, config_tail) < 0)
        goto out;
    rc = 0;
out:
    free(text);
    free(oidc_text);
    json_decref(oidc);
    json_decref(list);
    return rc;
}

struct sources {
    size_t n;
    char ids[MAX_SOURCES][AHL_ID_LEN + 1];
    char names[MAX_SOURCES][257];
};

static int add_source(void *ctx, const struct ahl_datastore_rec *rec)
{
    struct sources *s = ctx;
    if (s->n == MAX_SOURCES)
        return 1;
    memcpy(s->ids[s->n], rec->id, sizeof s->ids[0]);
    memcpy(s->names[s->n], rec->name, sizeof s->names[0]);
    s->n++;
    return 0;
}

static int serve_config(const struct ahl__viewer *v, struct ahl_api_service *svc,
                        struct ahl__viewer_answer *a)
{
    struct ahl_store_tx *tx = NULL;
    struct sources *s = calloc(1, sizeof *s);
    const char *ids[MAX_SOURCES], *names[MAX_SOURCES];
    size_t def = 0;
    int rc;
    if (!s)
        return AHL_ENOMEM;
    if ((rc = ahl_store_begin(svc->store, false, &tx)) == 0) {
        rc = ahl_store_datastore_list(tx, "ACTIVE", NULL, MAX_SOURCES, add_source, s);
        ahl_store_rollback(tx);
    }
    if (rc < 0) {
        ahl_error("viewer: cannot list the data stores for app-config.js: %s", ahl_strerror(rc));
        free(s);
        return text_answer(a, 500, "The data stores could not be listed; see the server's log.\n");
    }
    for (size_t i = 0; i < s->n; i++) {
        ids[i] = s->ids[i];
        names[i] = s->names[i];
        if (!strcmp(s->ids[i], v->datastore))
            def = i;
    }
    a->status = 200;
    a->content_type = "text/javascript; charset=utf-8";
    a->cache_control = "no-cache";
    rc = ahl__viewer_config(v, ids, names, s->n, def, &a->body);
    free(s);
    return rc;
}

/* ---- files --------------------------------------------------------------------------------- */

static bool etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match || !etag[0])
        return false;
    if (!strcmp(if_none_match, "*"))
        return true;
    /* Weak comparison (RFC 9110 8.8.3.2): the quoted part, with or without W/. */
    const char *quoted = strchr(etag, '"');
    return quoted && strstr(if_none_match, quoted) != NULL;
}

/* The cache headers of a file, and whether the client's copy is current (then a is a 304). */
static bool cached(const struct ahl__viewer_request *rq, const char *rel, const struct stat *st,
                   const char *variant, struct ahl__viewer_answer *a)
{
    a->cache_control = ahl__static_hashed(rel) ? "public, max-age=31536000, immutable" : "no-cache";
    snprintf(a->etag, sizeof a->etag, "W/\"%" PRIx64 "-%" PRIx64 "%s%s\"", (uint64_t)st->st_size,
             (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec,
             variant ? "-" : "", variant ? variant : "");
    if (!etag_matches(rq->if_none_match, a->etag))
        return false;
    a->status = 304;
    return true;
}

/* Opens rel, or the precompressed sibling the client accepts (brotli first). */
static int open_file(const struct ahl__viewer *v, const char *rel, const char *accept_encoding,
                     struct ahl__viewer_answer *a, struct stat *st)
{
    static const struct {
        unsigned bit;
        const char *suffix, *encoding;
    } variants[] = {{AHL__ENC_BR, ".br", "br"}, {AHL__ENC_GZIP, ".gz", "gzip"}};
    unsigned accepted = ahl__accept_encodings(accept_encoding);
    char name[AHL__STATIC_PATH_MAX + 8];
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        if (!(accepted & variants[i].bit))
            continue;
        snprintf(name, sizeof name, "%s%s", rel, variants[i].suffix);
        if (ahl__static_open(v->root, name, &a->fd, st) == 0) {
            a->content_encoding = variants[i].encoding;
            return 0;
        }
    }
    return ahl__static_open(v->root, rel, &a->fd, st);
}

int ahl__viewer_serve(const struct ahl__viewer *v, struct ahl_api_service *svc,
                      const struct ahl__viewer_request *rq, struct ahl__viewer_answer *a)
{
    char rel[AHL__STATIC_PATH_MAX + 1];
    struct stat st;
    size_t prefix = strlen(AHL__VIEWER_PREFIX);
    int rc;

    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        a->allow = "GET, HEAD";
        return text_answer(a, 405, "The viewer's files are read with GET or HEAD.\n");
    }
    if (rq->path[prefix] == '\0') {
        memcpy(a->location, AHL__VIEWER_PREFIX "/", prefix + 2);
        return text_answer(a, 301, "The viewer is at " AHL__VIEWER_PREFIX "/\n");
    }
    const char *raw = rq->path + prefix + 1;
    if ((rc = ahl__static_path(raw, strlen(raw), rel, sizeof rel)) < 0)
        return text_answer(a, 400,
                           rc == AHL_ETOOBIG ? "The path is too long.\n"
                                             : "The path is not a file of the viewer.\n");
    if (!strcmp(rel, "app-config.js"))
        return serve_config(v, svc, a);
    if ((rc = open_file(v, rel, rq->accept_encoding, a, &st)) < 0) {
        const char *slash = strrchr(rel, '/');
        /* A route of the viewer (no extension): its index, which routes in the browser. */
        if (rc == AHL_ENOTFOUND && !strchr(slash ? slash + 1 : rel, '.')) {
            ahl_str_copy_cut(rel, sizeof rel, "index.html");
            rc = open_file(v, rel, rq->accept_encoding, a, &st);
        }
        if (rc < 0) {
            if (rc != AHL_ENOTFOUND)
                ahl_warn("viewer: cannot open %s: %s", rel, strerror(errno));
            return text_answer(a, 404, "No such file in the viewer.\n");
        }
    }
    a->size = (uint64_t)st.st_size;
    a->content_type = ahl__static_type(rel);
    a->vary_encoding = true;
    if (cached(rq, rel, &st, a->content_encoding, a)) {
        close(a->fd);
        a->fd = -1;
        a->size = 0;
        return 0;
    }
    a->status = 200;
    return 0;
}
