/* Credentials files: which files are accepted, the error for each refused one (an access key
 * defined twice among them), and the warning about a file other users can read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "base/err.h"

/* Writes text to a new file with the given mode; returns its path (static buffer). */
static const char *write_file(const char *text, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ahl-creds-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

/* Loads path with stderr sent to a file; returns what was logged (caller frees). */
static char *load_logged(const char *path, struct ahl_api_credentials *creds, struct ahl_err *err,
                         int *rc)
{
    FILE *log = tmpfile();
    assert_non_null(log);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(log), 2);
    *rc = ahl_api_credentials_load(path, creds, err);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fileno(log), 0, SEEK_END);
    assert_true(n >= 0);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(log), text, (size_t)n, 0), n);
    fclose(log);
    return text;
}

static void test_files(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        size_t keys;
        const char *msg; /* a part of err.msg */
    } rows[] = {
        {"[default]\naws_access_key_id = A1\naws_secret_access_key = s1\n", 0, 1, ""},
        {"[a]\naws_access_key_id=A1\naws_secret_access_key=s1\n"
         "[b]\naws_access_key_id=A2\naws_secret_access_key=s2\n",
         0, 2, ""},
        {"[a]\naws_access_key_id=A1\naws_secret_access_key=s1\n"
         "[b]\naws_access_key_id=A1\naws_secret_access_key=other\n",
         AHL_ECONFLICT, 1, "profile [b]: access key A1 is defined a second time"},
        {"[a]\naws_access_key_id=A1\naws_secret_access_key=s1\n"
         "[b]\naws_access_key_id=A1\naws_secret_access_key=s1\n",
         AHL_ECONFLICT, 1, "profile [b]: access key A1 is defined a second time"},
        {"[a]\naws_access_key_id=A1\n", AHL_EPARSE, 0, "has aws_access_key_id but not"},
        {"# nothing\n", AHL_EPARSE, 0, "holds no profile"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ahl_api_credentials creds = {0};
        struct ahl_err err;
        ahl_err_clear(&err);
        const char *path = write_file(rows[i].text, 0600);
        int rc = ahl_api_credentials_load(path, &creds, &err);
        unlink(path);
        if (rc != rows[i].rc || creds.n != rows[i].keys || !strstr(err.msg, rows[i].msg))
            fail_msg("row %zu: rc %d, %zu keys, '%s'", i, rc, creds.n, err.msg);
    }
}

static void test_add_refuses_a_second_definition(void **state)
{
    (void)state;
    struct ahl_api_credentials creds = {0};
    assert_int_equal(ahl_api_credentials_add(&creds, "AKIA1", "one"), 0);
    assert_int_equal(ahl_api_credentials_add(&creds, "AKIA1", "two"), AHL_ECONFLICT);
    assert_int_equal(creds.n, 1);
    assert_string_equal(creds.keys[0].secret_key, "one");
}

static void test_warns_about_readable_files(void **state)
{
    (void)state;
    static const struct {
        mode_t mode;
        const char *warning; /* NULL: none */
    } rows[] = {
        {0600, NULL},
        {0400, NULL},
        {0640, "readable by its group (mode 640)"},
        {0644, "readable by every user (mode 644)"},
        {0604, "readable by every user (mode 604)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ahl_api_credentials creds = {0};
        struct ahl_err err;
        int rc;
        const char *path =
            write_file("[default]\naws_access_key_id=A1\naws_secret_access_key=s1\n", rows[i].mode);
        char *log = load_logged(path, &creds, &err, &rc);
        unlink(path);
        assert_int_equal(rc, 0);
        if (rows[i].warning ? !strstr(log, rows[i].warning) || !strstr(log, "chmod 600")
                            : strstr(log, "warn") != NULL)
            fail_msg("mode %03o: logged '%s'", (unsigned)rows[i].mode, log);
        free(log);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_add_refuses_a_second_definition),
        cmocka_unit_test(test_warns_about_readable_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
