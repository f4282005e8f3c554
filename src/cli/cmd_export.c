/* ahilite export: writes every instance of one version of an image set as a Part-10 file
 * (OUT_DIR/<SOPInstanceUID>.dcm, Explicit VR Little Endian), from the version's metadata
 * document (so edits made with UpdateImageSetMetadata are in the files, and recorded in each
 * changed instance's Original Attributes Sequence) and its stored frames decoded to native pixel
 * data. The files are made by export/export.h, which DICOMweb's retrieve shares; this command
 * opens the data directory, names the files and writes each atomically.
 *
 * Not done yet: compressed output transfer syntaxes (lossy frames are written decoded), 4:2:2
 * native data (import stores 4:2:2 sources at full resolution and records YBR_FULL, so only an
 * edited PhotometricInterpretation asks for it), float pixel data. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/framestore.h"
#include "dicom/p10write.h"
#include "export/export.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ahilite export [OPTIONS] OUT_DIR\n\n"
               "Writes every instance of an image set as a DICOM Part-10 file\n"
               "OUT_DIR/<SOPInstanceUID>.dcm in Explicit VR Little Endian, with the attributes of\n"
               "the version asked for (edits included, and recorded in the Original Attributes\n"
               "Sequence of each instance they changed) and the stored frames decoded to native\n"
               "pixel data. OUT_DIR is created if needed; existing files of the same name are\n"
               "replaced.\n\n"
               "options:\n"
               "  --data-dir DIR        the data directory (default ./ahilite-data)\n"
               "  --database URI        the PostgreSQL database the server keeps its metadata\n"
               "                        in (postgresql://...; default: SQLite in DIR)\n"
               "  --datastore-id ID     the data store (required)\n"
               "  --image-set-id ID     the image set (required)\n"
               "  --version-id N        the version (default: the latest)\n"
               "  --blob-store s3://BUCKET/PREFIX, --s3-endpoint URL\n"
               "                        the frames are in this bucket (as `ahilite serve` was\n"
               "                        given them)\n"
               "  --help                this text\n\n"
               "Exit status: 0 every instance written, 1 some instance or the image set could not\n"
               "be exported, 2 usage error or no database.\n");
}

/* A SOPInstanceUID as a file name: letters, digits, '.', '-' and '_' only, not "." or "..". */
static bool safe_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 200 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    return strspn(s, "0123456789.-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == n;
}

/* Writes one instance to out_dir/<sop>.dcm through a temporary file renamed into place. */
static int export_instance(const json_t *doc, const char *sop, const json_t *originals,
                           struct ahl_framestore *fs, const char *out_dir, struct ahl_err *err)
{
    char path[4400], tmp[4400];
    struct ahl_export_opts o = {.originals = originals};
    int rc, fd;
    if (!safe_name(sop))
        return ahl_fail(err, AHL_EINVAL, "SOPInstanceUID '%s' cannot be a file name", sop);
    snprintf(path, sizeof path, "%s/%s.dcm", out_dir, sop);
    snprintf(tmp, sizeof tmp, "%s/.%s.dcm.tmp", out_dir, sop);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
        return ahl_fail(err, AHL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    rc = ahl_export_instance(fs, doc, sop, &o, ahl_p10_sink_fd, &fd, err);
    if (close(fd) < 0 && rc == 0)
        rc = ahl_fail(err, AHL_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) < 0)
        rc = ahl_fail(err, AHL_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int ahl_cmd_export(int argc, char **argv)
{
    const char *dir = "./ahilite-data", *ds = NULL, *set = NULL, *out_dir = NULL;
    const char *blob_store = NULL, *s3_endpoint = NULL, *database = NULL;
    uint64_t version = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data-dir") && has_value) {
            dir = argv[++i];
        } else if (!strcmp(a, "--database") && has_value) {
            database = argv[++i];
        } else if (!strcmp(a, "--datastore-id") && has_value) {
            ds = argv[++i];
        } else if (!strcmp(a, "--image-set-id") && has_value) {
            set = argv[++i];
        } else if (!strcmp(a, "--blob-store") && has_value) {
            blob_store = argv[++i];
        } else if (!strcmp(a, "--s3-endpoint") && has_value) {
            s3_endpoint = argv[++i];
        } else if (!strcmp(a, "--version-id") && has_value) {
            char *end;
            const char *v = argv[++i];
            errno = 0;
            version = strtoull(v, &end, 10);
            if (errno || *end || !*v || v[0] == '-' || version == 0) {
                fprintf(stderr, "ahilite export: --version-id expects a version number (1, 2, "
                                "...)\n");
                return 2;
            }
        } else if (a[0] == '-' || out_dir) {
            fprintf(stderr, "ahilite export: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else {
            out_dir = a;
        }
    }
    if (!ds || !set || !out_dir) {
        fprintf(stderr, "ahilite export: --datastore-id, --image-set-id and OUT_DIR are "
                        "required\n\n");
        usage(stderr);
        return 2;
    }

    char db[4096];
    struct ahl_err err;
    struct ahl_framestore fs;
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    json_t *doc = NULL, *history = NULL;
    int status = 1, rc;
    size_t written = 0, failed = 0;

    ahl_err_clear(&err);
    if (ahl_cli_find_db("export", dir, database, db, sizeof db))
        return 2;
    if (ahl_framestore_open_dir(&fs, dir, blob_store, s3_endpoint, true, &err) < 0) {
        fprintf(stderr, "ahilite export: %s\n", err.msg);
        return 2;
    }
    if ((rc = ahl_store_open(database, dir, 1, &s)) < 0) {
        fprintf(stderr, "ahilite export: cannot open %s: %s\n", db, ahl_strerror(rc));
        ahl_framestore_close(&fs);
        return 2;
    }
    if ((rc = ahl_meta_open(s, NULL, &m)) < 0) {
        fprintf(stderr, "ahilite export: cannot open the metadata engine: %s\n", ahl_strerror(rc));
        goto out;
    }
    if (ahl_meta_document(m, ds, set, version, &doc, &err) < 0) {
        fprintf(stderr, "ahilite export: %s\n", err.msg);
        goto out;
    }
    if (ahl_export_history(m, ds, set, version, NULL, NULL, &history, &err) < 0) {
        fprintf(stderr, "ahilite export: reading the versions before: %s\n", err.msg);
        goto out;
    }
    if (mkdir(out_dir, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "ahilite export: cannot create %s: %s\n", out_dir, strerror(errno));
        goto out;
    }
    const char *suid, *sop;
    json_t *series, *inst;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), suid, series)
    {
        json_object_foreach(json_object_get(series, "Instances"), sop, inst)
        {
            ahl_err_clear(&err);
            if (export_instance(doc, sop, json_object_get(history, sop), &fs, out_dir, &err) < 0) {
                fprintf(stderr, "ahilite export: instance %s: %s\n", sop, err.msg);
                failed++;
            } else {
                written++;
            }
        }
    }
    printf("exported %zu instance%s of image set %s to %s", written, written == 1 ? "" : "s", set,
           out_dir);
    if (failed)
        printf("; %zu failed", failed);
    printf("\n");
    status = failed ? 1 : 0;
out:
    json_decref(history);
    json_decref(doc);
    ahl_meta_close(m);
    ahl_store_close(s);
    ahl_framestore_close(&fs);
    return status;
}
