/* ahilite dump: reads DICOM Part-10 files and prints, for each, the single-instance image-set
 * metadata document HealthImaging would return for it (GetImageSetMetadata after gunzip).
 * Files are independent: a file that fails is reported on stderr and the others still print. */
#include "cli/cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/err.h"
#include "dicom/normalize.h"
#include "dicom/p10.h"
#include "json/json.h"
#include "base/banned.h"

static void ahl__dump_usage(FILE *f)
{
    fprintf(f, "usage: ahilite dump [--pretty | --json-lines] FILE...\n"
               "\n"
               "Reads each DICOM Part-10 file and prints the image-set metadata document\n"
               "HealthImaging would build for that one instance: SchemaVersion, Patient, Study\n"
               "with its Series and Instances, attributes typed and placed as HealthImaging does.\n"
               "DatastoreID and ImageSetID are left out (they exist only once the instance is\n"
               "stored), and so are the per-frame ID, checksums and min/max values, which come\n"
               "from the frame store; ImageFrames lists each frame with its FrameSizeInBytes as\n"
               "the file's header gives it.\n"
               "\n"
               "options:\n"
               "  --pretty      indent the output for reading (default: compact)\n"
               "  --json-lines  one compact document per line, for many files\n"
               "  -h, --help    this text\n"
               "\n"
               "A file that cannot be read is reported on stderr with the reason; the exit status\n"
               "is then 1 (0 when every file printed, 2 for a usage error).\n");
}

/* One file's document, appended to out (followed by a newline). */
static int ahl__dump_one(const char *path, bool pretty, struct ahl_buf *out, struct ahl_err *err)
{
    struct ahl_dcm_file *f = NULL;
    json_t *doc = NULL, *full = NULL;
    int rc = ahl_p10_read_path(path, NULL, &f, err);
    if (rc < 0)
        goto out;
    rc = ahl_hi_normalize(f, &doc, err);
    if (rc < 0)
        goto out;
    full = json_object();
    if (!full || json_object_set_new(full, "SchemaVersion", json_string("1.1")) < 0 ||
        json_object_set(full, "Patient", json_object_get(doc, "Patient")) < 0 ||
        json_object_set(full, "Study", json_object_get(doc, "Study")) < 0) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    rc = pretty ? ahl_json_write_pretty(full, 2, out) : ahl_json_write(full, out);
    if (rc == 0)
        rc = ahl_buf_addc(out, '\n');
    if (rc < 0)
        ahl_fail(err, rc, "cannot write the document: %s", ahl_strerror(rc));
out:
    json_decref(full);
    json_decref(doc);
    ahl_dcm_file_free(f);
    return rc;
}

int ahl_cmd_dump(int argc, char **argv)
{
    bool pretty = false, lines = false;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            first = i + 1;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ahl__dump_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--pretty")) {
            pretty = true;
        } else if (!strcmp(a, "--json-lines")) {
            lines = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "ahilite dump: unknown option '%s'\n\n", a);
            ahl__dump_usage(stderr);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (pretty && lines) {
        fprintf(stderr, "ahilite dump: --pretty and --json-lines exclude each other\n");
        return 2;
    }
    if (first >= argc) {
        fprintf(stderr, "ahilite dump: no FILE given\n\n");
        ahl__dump_usage(stderr);
        return 2;
    }

    static char stdout_buf[1 << 16];
    setvbuf(stdout, stdout_buf, _IOFBF, sizeof stdout_buf);
    struct ahl_buf out;
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    int failed = 0;
    for (int i = first; i < argc; i++) {
        struct ahl_err err;
        ahl_err_clear(&err);
        ahl_buf_reset(&out);
        if (ahl__dump_one(argv[i], pretty, &out, &err) < 0) {
            fflush(stdout);
            fprintf(stderr, "ahilite dump: %s: %s\n", argv[i],
                    err.msg[0] ? err.msg : ahl_strerror(err.code));
            failed++;
            continue;
        }
        if (fwrite(out.data, 1, out.len, stdout) != out.len) {
            fprintf(stderr, "ahilite dump: cannot write to standard output\n");
            ahl_buf_release(&out);
            return 1;
        }
    }
    ahl_buf_release(&out);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ahilite dump: cannot write to standard output\n");
        return 1;
    }
    return failed ? 1 : 0;
}
