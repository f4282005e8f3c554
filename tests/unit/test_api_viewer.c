/* Unit tests for the viewer's files (src/api/static.c, viewer.c), without HTTP: the path below
 * /viewer/ (every way of climbing out refused), opening beneath the directory (symbolic links,
 * FIFOs and directories refused), Accept-Encoding, media types, cache lifetimes, and the answers:
 * methods, the redirect, precompressed siblings, ETag and 304, the fallback to index.html for the
 * viewer's routes, and app-config.js with names that must stay inert in JavaScript. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/viewer_internal.h"
#include "base/err.h"

static void test_static_path(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        int rc;
        const char *out;
    } rows[] = {
        {"", 0, "index.html"},
        {"index.html", 0, "index.html"},
        {"app.bundle.0f6159c501addfe9.js", 0, "app.bundle.0f6159c501addfe9.js"},
        {"assets/favicon.ico", 0, "assets/favicon.ico"},
        {"assets/", 0, "assets/index.html"},
        {"a%20b.js", 0, "a b.js"},
        {"a%7Eb", 0, "a~b"},
        {"viewer", 0, "viewer"},
        {"a..b", 0, "a..b"},
        {"..", AHL_EINVAL, ""},
        {"../etc/passwd", AHL_EINVAL, ""},
        {"assets/../../etc/passwd", AHL_EINVAL, ""},
        {"assets/..", AHL_EINVAL, ""},
        {"%2e%2e/etc/passwd", AHL_EINVAL, ""},
        {"%2E%2E", AHL_EINVAL, ""},
        {".%2e/x", AHL_EINVAL, ""},
        {"./index.html", AHL_EINVAL, ""},
        {".git/config", AHL_EINVAL, ""},
        {"assets/.hidden", AHL_EINVAL, ""},
        {"/etc/passwd", AHL_EINVAL, ""},
        {"a//b", AHL_EINVAL, ""},
        {"assets%2f..%2f..%2fetc", AHL_EINVAL, ""},
        {"assets%2Fx", AHL_EINVAL, ""},
        {"..%5c..%5cetc", AHL_EINVAL, ""},
        {"a\\b", AHL_EINVAL, ""},
        {"a%00.js", AHL_EINVAL, ""},
        {"a%0a", AHL_EINVAL, ""},
        {"a%7f", AHL_EINVAL, ""},
        {"%", AHL_EINVAL, ""},
        {"%2", AHL_EINVAL, ""},
        {"%zz", AHL_EINVAL, ""},
        {"a%2", AHL_EINVAL, ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[AHL__STATIC_PATH_MAX + 1];
        int rc = ahl__static_path(rows[i].raw, strlen(rows[i].raw), out, sizeof out);
        if (rc != rows[i].rc || (rc == 0 && strcmp(out, rows[i].out) != 0))
            fail_msg("'%s': %d '%s', expected %d '%s'", rows[i].raw, rc, rc == 0 ? out : "",
                     rows[i].rc, rows[i].out);
    }
}

static void test_static_path_limits(void **state)
{
    (void)state;
    char raw[4096], out[AHL__STATIC_PATH_MAX + 1];
    memset(raw, 'a', AHL__STATIC_PATH_MAX);
    assert_int_equal(ahl__static_path(raw, AHL__STATIC_PATH_MAX, out, sizeof out), 0);
    memset(raw, 'a', AHL__STATIC_PATH_MAX + 1);
    assert_int_equal(ahl__static_path(raw, AHL__STATIC_PATH_MAX + 1, out, sizeof out), AHL_ETOOBIG);
    assert_int_equal(ahl__static_path("abcdef", 6, out, 4), AHL_ETOOBIG);
    /* Too many segments. */
    size_t n = 0;
    for (int i = 0; i <= AHL__STATIC_SEGMENTS_MAX; i++)
        n += (size_t)snprintf(raw + n, sizeof raw - n, "d/");
    raw[n - 1] = '\0';
    assert_int_equal(ahl__static_path(raw, n - 1, out, sizeof out), AHL_EINVAL);
}

static void test_accept_encodings(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        unsigned want;
    } rows[] = {
        {"gzip, deflate, br, zstd", AHL__ENC_GZIP | AHL__ENC_BR},
        {"gzip", AHL__ENC_GZIP},
        {"BR", AHL__ENC_BR},
        {"identity", 0},
        {"", 0},
        {"*", AHL__ENC_GZIP | AHL__ENC_BR},
        {"*;q=0", 0},
        {"*;q=0, gzip", AHL__ENC_GZIP},
        {"gzip;q=0, *", AHL__ENC_BR},
        {"br;q=0, gzip;q=0.5", AHL__ENC_GZIP},
        {"br;q=0.000", 0},
        {"br;q=0.", 0},
        {"br;q=0.001", AHL__ENC_BR},
        {"br; q=1.0", AHL__ENC_BR},
        {"gzip;q=1, gzip;q=0", 0},
        {"gzipx, xbr", 0},
        {" gzip ;q=0.8 ,, br", AHL__ENC_GZIP | AHL__ENC_BR},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        unsigned got = ahl__accept_encodings(rows[i].header);
        if (got != rows[i].want)
            fail_msg("'%s': %u, expected %u", rows[i].header, got, rows[i].want);
    }
    assert_int_equal(ahl__accept_encodings(NULL), 0);
}

static void test_types_and_hashes(void **state)
{
    (void)state;
    assert_string_equal(ahl__static_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(ahl__static_type("a/b.bundle.js"), "text/javascript; charset=utf-8");
    assert_string_equal(ahl__static_type("x.wasm"), "application/wasm");
    assert_string_equal(ahl__static_type("x.CSS"), "text/css; charset=utf-8");
    assert_string_equal(ahl__static_type("f.woff2"), "font/woff2");
    assert_string_equal(ahl__static_type("assets/icon.svg"), "image/svg+xml");
    assert_string_equal(ahl__static_type("model.onnx"), "application/octet-stream");
    assert_string_equal(ahl__static_type("js.dir/README"), "application/octet-stream");
    assert_true(ahl__static_hashed("app.bundle.0f6159c501addfe9.js"));
    assert_true(ahl__static_hashed("0ddf166f7a343eda.wasm"));
    assert_false(ahl__static_hashed("index.html"));
    assert_false(ahl__static_hashed("1602.css"));
    assert_false(ahl__static_hashed("0123456789abcdef/x.js")); /* the name, not the folder */
}

/* A viewer directory: index.html, a hashed bundle with .gz and .br siblings, assets/, a FIFO,
 * and symbolic links to a file outside, to a directory outside, and inside the tree. */
struct tree {
    char dir[64], outside[80];
    int root;
};

static void put(const char *dir, const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int tree_setup(void **state)
{
    struct tree *t = calloc(1, sizeof *t);
    char p[256];
    snprintf(t->dir, sizeof t->dir, "/tmp/ahl-viewer-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->outside, sizeof t->outside, "%s-outside", t->dir);
    assert_int_equal(mkdir(t->outside, 0700), 0);
    put(t->outside, "secret.txt", "secret");
    snprintf(p, sizeof p, "%s/assets", t->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    put(t->dir, "index.html", "<html>index</html>");
    put(t->dir, "app.0123456789abcdef.js", "plain");
    put(t->dir, "app.0123456789abcdef.js.gz", "gzipped");
    put(t->dir, "app.0123456789abcdef.js.br", "brotli");
    put(t->dir, "assets/logo.svg", "<svg/>");
    snprintf(p, sizeof p, "%s/pipe.js", t->dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/link.txt", t->dir);
    char target[128];
    snprintf(target, sizeof target, "%s/secret.txt", t->outside);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/linkdir", t->dir);
    assert_int_equal(symlink(t->outside, p), 0);
    snprintf(p, sizeof p, "%s/inner.svg", t->dir);
    assert_int_equal(symlink("assets/logo.svg", p), 0);
    t->root = open(t->dir, O_RDONLY | O_DIRECTORY);
    assert_true(t->root >= 0);
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    struct tree *t = *state;
    char cmd[256];
    close(t->root);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", t->dir, t->outside);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

static void test_static_open(void **state)
{
    struct tree *t = *state;
    static const struct {
        const char *rel;
        int rc;
    } rows[] = {
        {"index.html", 0},
        {"assets/logo.svg", 0},
        {"missing.js", AHL_ENOTFOUND},
        {"assets", AHL_ENOTFOUND},             /* a directory */
        {"pipe.js", AHL_ENOTFOUND},            /* a FIFO: never opened for reading */
        {"link.txt", AHL_ENOTFOUND},           /* a link out of the tree */
        {"linkdir/secret.txt", AHL_ENOTFOUND}, /* through a linked directory */
        {"inner.svg", AHL_ENOTFOUND},          /* links inside the tree are refused too */
        {"index.html/x", AHL_ENOTFOUND},       /* a file where a directory is needed */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int fd = -2;
        struct stat st;
        int rc = ahl__static_open(t->root, rows[i].rel, &fd, &st);
        if (rc != rows[i].rc)
            fail_msg("%s: %d, expected %d", rows[i].rel, rc, rows[i].rc);
        if (rc == 0) {
            assert_true(fd >= 0);
            assert_true(S_ISREG(st.st_mode));
            close(fd);
        } else {
            assert_int_equal(fd, -1);
        }
    }
}

static void serve(struct tree *t, const char *method, const char *path, const char *inm,
                  const char *ae, struct ahl__viewer_answer *a)
{
    struct ahl__viewer v = {.root = t->root};
    struct ahl__viewer_request rq = {
        .method = method, .path = path, .if_none_match = inm, .accept_encoding = ae};
    ahl__viewer_answer_init(a);
    assert_int_equal(ahl__viewer_serve(&v, NULL, &rq, a), 0);
}

static char *body_of(struct ahl__viewer_answer *a)
{
    static char text[256];
    if (a->fd >= 0) {
        ssize_t n = pread(a->fd, text, sizeof text - 1, 0);
        assert_true(n >= 0);
        text[n] = '\0';
    } else {
        snprintf(text, sizeof text, "%.*s", (int)a->body.len, a->body.data ? a->body.data : "");
    }
    return text;
}

static void test_serve(void **state)
{
    struct tree *t = *state;
    struct ahl__viewer_answer a;

    serve(t, "POST", "/viewer/index.html", NULL, NULL, &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.allow, "GET, HEAD");
    ahl__viewer_answer_release(&a);

    serve(t, "GET", "/viewer", NULL, NULL, &a);
    assert_int_equal(a.status, 301);
    assert_string_equal(a.location, "/viewer/");
    ahl__viewer_answer_release(&a);

    serve(t, "GET", "/viewer/", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(body_of(&a), "<html>index</html>");
    assert_string_equal(a.content_type, "text/html; charset=utf-8");
    assert_string_equal(a.cache_control, "no-cache");
    ahl__viewer_answer_release(&a);

    /* The viewer's routes are its index; a missing file with an extension is not. */
    serve(t, "GET", "/viewer/viewer", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(body_of(&a), "<html>index</html>");
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/local/x", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/missing.js", NULL, NULL, &a);
    assert_int_equal(a.status, 404);
    ahl__viewer_answer_release(&a);

    /* Climbing out: refused before the file system is asked. */
    serve(t, "GET", "/viewer/../etc/passwd", NULL, NULL, &a);
    assert_int_equal(a.status, 400);
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/%2e%2e/%2e%2e/etc/passwd", NULL, NULL, &a);
    assert_int_equal(a.status, 400);
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/linkdir/secret.txt", NULL, NULL, &a);
    assert_int_equal(a.status, 404);
    ahl__viewer_answer_release(&a);

    /* Precompressed siblings, brotli first; the plain file otherwise. */
    serve(t, "GET", "/viewer/app.0123456789abcdef.js", NULL, "gzip, deflate, br", &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.content_encoding, "br");
    assert_string_equal(body_of(&a), "brotli");
    assert_string_equal(a.content_type, "text/javascript; charset=utf-8");
    assert_string_equal(a.cache_control, "public, max-age=31536000, immutable");
    assert_true(a.vary_encoding);
    char br_etag[64];
    snprintf(br_etag, sizeof br_etag, "%s", a.etag);
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/app.0123456789abcdef.js", NULL, "gzip", &a);
    assert_string_equal(a.content_encoding, "gzip");
    assert_string_equal(body_of(&a), "gzipped");
    assert_string_not_equal(a.etag, br_etag);
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/app.0123456789abcdef.js", NULL, "br;q=0, gzip;q=0", &a);
    assert_null(a.content_encoding);
    assert_string_equal(body_of(&a), "plain");
    assert_int_equal(a.size, 5);
    char etag[64];
    snprintf(etag, sizeof etag, "%s", a.etag);
    ahl__viewer_answer_release(&a);

    /* If-None-Match: the same ETag (weak or not, in a list) is a 304 without a body. */
    char inm[160];
    snprintf(inm, sizeof inm, "\"x\", %s", etag + 2);
    serve(t, "GET", "/viewer/app.0123456789abcdef.js", inm, NULL, &a);
    assert_int_equal(a.status, 304);
    assert_int_equal(a.fd, -1);
    ahl__viewer_answer_release(&a);
    serve(t, "GET", "/viewer/app.0123456789abcdef.js", br_etag, NULL, &a);
    assert_int_equal(a.status, 200);
    ahl__viewer_answer_release(&a);

    serve(t, "HEAD", "/viewer/assets/logo.svg", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.content_type, "image/svg+xml");
    assert_string_equal(a.cache_control, "no-cache");
    ahl__viewer_answer_release(&a);
}

static void test_viewer_path(void **state)
{
    (void)state;
    assert_true(ahl__viewer_path("/viewer"));
    assert_true(ahl__viewer_path("/viewer/"));
    assert_true(ahl__viewer_path("/viewer?x=1"));
    assert_true(ahl__viewer_path("/viewer/viewer?StudyInstanceUIDs=1"));
    assert_false(ahl__viewer_path("/viewerx"));
    assert_false(ahl__viewer_path("/datastore"));
    assert_false(ahl__viewer_path("/Viewer/"));
}

static void test_config(void **state)
{
    (void)state;
    const char *ids[] = {"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"};
    const char *names[] = {"plain", "</script><script>alert(1)</script>\"'\xe2\x80\xa8"};
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl__viewer_config(NULL, ids, names, 2, 1, &b), 0);
    assert_non_null(strstr(b.data, "var stores = [[\"0123456789abcdef0123456789abcdef\",\"plain\"],"
                                   "[\"fedcba9876543210fedcba9876543210\",\"</script><script>"
                                   "alert(1)</script>\\\"'\\u2028\"]];"));
    assert_non_null(strstr(b.data, "var def = 1;"));
    assert_non_null(strstr(b.data, "routerBasename: '/viewer'"));
    assert_non_null(strstr(b.data, "origin + '/datastore/' + s[0]"));
    assert_non_null(strstr(b.data, "var oidc = null;"));
    ahl_buf_reset(&b);
    assert_int_equal(ahl__viewer_config(NULL, ids, names, 0, 0, &b), 0);
    assert_non_null(strstr(b.data, "var stores = [];"));

    /* With a client id: OHIF's sign-in at the issuer, by code flow, asking for read access. */
    struct ahl__viewer v = {.root = -1,
                            .oidc_issuer = "https://idp.example.org/realms/x\"'",
                            .oidc_client_id = "ohif-viewer"};
    ahl_buf_reset(&b);
    assert_int_equal(ahl__viewer_config(&v, ids, names, 1, 0, &b), 0);
    assert_non_null(strstr(b.data, "var oidc = [{"));
    assert_non_null(strstr(b.data, "\"authority\":\"https://idp.example.org/realms/x\\\"'\""));
    assert_non_null(strstr(b.data, "\"client_id\":\"ohif-viewer\""));
    assert_non_null(strstr(b.data, "\"response_type\":\"code\""));
    assert_non_null(strstr(b.data, "\"scope\":\"openid ahilite:read\""));
    assert_non_null(strstr(b.data, "\"redirect_uri\":\"/callback\""));
    assert_non_null(strstr(b.data, "    oidc: oidc,"));
    ahl_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_path),
        cmocka_unit_test(test_static_path_limits),
        cmocka_unit_test(test_accept_encodings),
        cmocka_unit_test(test_types_and_hashes),
        cmocka_unit_test_setup_teardown(test_static_open, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_serve, tree_setup, tree_teardown),
        cmocka_unit_test(test_viewer_path),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
