/* ahilite export: writes every instance of one version of an image set as a Part-10 file
 * (OUT_DIR/<SOPInstanceUID>.dcm, Explicit VR Little Endian), from the version's metadata
 * document (so edits made with UpdateImageSetMetadata are in the files) and its stored frames.
 *
 * The attributes are written by dicom/p10write.h, which decodes nothing; the pixel data is made
 * here, one frame at a time: each frame file is read from the frame store (checked against its
 * content address), decoded to the canonical raw samples (frames/frames.h) and laid out as native
 * pixel data as the instance's Image Pixel attributes describe it (BitsAllocated,
 * PlanarConfiguration). The frame store and the codecs sit above dicom/, so this step cannot live
 * in p10write.c; it lives here rather than in import/ because it reads what import wrote and shares
 * nothing with it. For lossless sources the samples are the source's, bit for bit.
 *
 * Not done yet: compressed output transfer syntaxes (lossy frames are written decoded), 4:2:2
 * native data (import stores 4:2:2 sources at full resolution and records YBR_FULL, so only an
 * edited PhotometricInterpretation asks for it), float pixel data, and the Original Attributes
 * Sequence recording edits. */
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
#include "dicom/dataset.h"
#include "dicom/hidoc.h"
#include "dicom/p10write.h"
#include "frames/frames.h"
#include "meta/meta.h"
#include "store/store.h"
#include "base/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ahilite export [OPTIONS] OUT_DIR\n\n"
               "Writes every instance of an image set as a DICOM Part-10 file\n"
               "OUT_DIR/<SOPInstanceUID>.dcm in Explicit VR Little Endian, with the attributes of\n"
               "the version asked for (edits included) and the stored frames decoded to native\n"
               "pixel data. OUT_DIR is created if needed; existing files of the same name are\n"
               "replaced.\n\n"
               "options:\n"
               "  --data-dir DIR        the data directory (default ./ahilite-data)\n"
               "  --datastore-id ID     the data store (required)\n"
               "  --image-set-id ID     the image set (required)\n"
               "  --version-id N        the version (default: the latest)\n"
               "  --help                this text\n\n"
               "Exit status: 0 every instance written, 1 some instance or the image set could not\n"
               "be exported, 2 usage error or no database.\n");
}

/* What the pixel callback needs for one instance. */
struct pixels {
    struct ahl_framestore *fs;
    const json_t *frames;    /* the instance's ImageFrames */
    const char *stored_ts;   /* StoredTransferSyntaxUID */
    struct ahl_pixel_desc d; /* the native layout to write (transfer syntax: explicit LE) */
    uint64_t frame_size;     /* native bytes per frame */
};

/* Fills px from the instance's Image Pixel attributes; 0, or AHL_EUNSUPPORTED / AHL_EINVAL with
 * the reason in err. */
static int describe(const json_t *inst, struct pixels *px, struct ahl_err *err)
{
    const json_t *dicom = json_object_get(inst, "DICOM");
    const char *pi = json_string_value(json_object_get(dicom, "PhotometricInterpretation"));
    long rows = ahl_hidoc_int(dicom, "Rows", 0), cols = ahl_hidoc_int(dicom, "Columns", 0);
    long spp = ahl_hidoc_int(dicom, "SamplesPerPixel", 1), ba = ahl_hidoc_int(dicom, "BitsAllocated", 0);
    long bs = ahl_hidoc_int(dicom, "BitsStored", ba), pr = ahl_hidoc_int(dicom, "PixelRepresentation", 0);
    long nf = ahl_hidoc_int(dicom, "NumberOfFrames", 1);
    size_t n = json_array_size(px->frames);
    if (rows <= 0 || rows > 65535 || cols <= 0 || cols > 65535 || spp < 1 || spp > 3 ||
        (ba != 1 && ba != 8 && ba != 16) || bs < 1 || bs > ba || pr < 0 || pr > 1 || !pi)
        return ahl_fail(err, AHL_EINVAL,
                        "the Image Pixel attributes (Rows, Columns, SamplesPerPixel, "
                        "BitsAllocated, BitsStored, PixelRepresentation, "
                        "PhotometricInterpretation) do not describe the stored frames");
    if ((size_t)nf != n)
        return ahl_fail(err, AHL_EINVAL, "NumberOfFrames is %ld but %zu frames are stored", nf, n);
    if (strstr(pi, "422"))
        return ahl_fail(err, AHL_EUNSUPPORTED, "%s native pixel data is not written yet", pi);
    px->d = ahl_pixel_desc_make((uint32_t)rows, (uint32_t)cols, (uint16_t)spp, (uint16_t)ba,
                                (uint16_t)bs, (uint16_t)pr, pi, AHL_TS_EXPLICIT_LE);
    px->d.high_bit = (uint16_t)ahl_hidoc_int(dicom, "HighBit", bs - 1);
    px->d.planar_configuration = (uint16_t)ahl_hidoc_int(dicom, "PlanarConfiguration", 0);
    px->frame_size = ahl_native_frame_size(&px->d);
    if (!px->frame_size)
        return ahl_fail(err, AHL_EINVAL, "the Image Pixel attributes are not valid");
    if (ba == 1 && n > 1 && ((uint64_t)rows * cols * spp) % 8)
        return ahl_fail(err, AHL_EUNSUPPORTED,
                        "multi-frame 1-bit pixel data whose frames do not end on a byte "
                        "boundary is not written yet");
    return 0;
}

/* Reads frame i's stored bytes, checked against its id. */
static int read_frame(struct pixels *px, size_t i, uint8_t **data, size_t *len, struct ahl_err *err)
{
    const char *id = json_string_value(json_object_get(json_array_get(px->frames, i), "ID"));
    *data = NULL;
    if (!id)
        return ahl_fail(err, AHL_ECORRUPT, "frame %zu has no ID", i + 1);
    return ahl_framestore_read_verified(px->fs, id, px->stored_ts, data, len, err);
}

/* The pixel callback: one frame at a time, read, decoded, laid out and handed to the sink. */
static int write_frames(void *ctx, ahl_p10_sink_fn sink, void *sink_ctx, struct ahl_err *err)
{
    struct pixels *px = ctx;
    uint8_t *native = NULL;
    int rc = 0;
    bool as_is = !strcmp(px->stored_ts, AHL_TS_EXPLICIT_LE); /* 1-bit frames are kept so */
    if (!as_is && !(native = malloc((size_t)px->frame_size)))
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < json_array_size(px->frames); i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        struct ahl_raw_frame raw = {0};
        if ((rc = read_frame(px, i, &data, &len, err)) < 0)
            break;
        if (as_is) {
            rc = len == px->frame_size
                     ? sink(sink_ctx, data, len)
                     : ahl_fail(err, AHL_ECORRUPT, "frame %zu holds %zu bytes, not %" PRIu64, i + 1,
                                len, px->frame_size);
        } else {
            struct ahl_pixel_desc sd = px->d;
            snprintf(sd.transfer_syntax, sizeof sd.transfer_syntax, "%s", px->stored_ts);
            sd.planar_configuration = 0;
            rc = ahl_frame_decode(&sd, data, len, &raw, err);
            rc = rc ? rc : ahl_raw_frame_to_native(&px->d, &raw, native, err);
            rc = rc ? rc : sink(sink_ctx, native, (size_t)px->frame_size);
            ahl_raw_frame_release(&raw);
        }
        free(data);
    }
    free(native);
    return rc;
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
static int export_instance(const json_t *doc, const char *sop, const json_t *inst,
                           struct ahl_framestore *fs, const char *out_dir, struct ahl_err *err)
{
    char path[4400], tmp[4400];
    struct pixels px = {.fs = fs, .frames = json_object_get(inst, "ImageFrames")};
    struct ahl_p10_pixels p10px = {.write = write_frames, .ctx = &px};
    bool has_pixels = json_array_size(px.frames) > 0;
    int rc, fd;
    if (!safe_name(sop))
        return ahl_fail(err, AHL_EINVAL, "SOPInstanceUID '%s' cannot be a file name", sop);
    if (has_pixels) {
        px.stored_ts = json_string_value(json_object_get(inst, "StoredTransferSyntaxUID"));
        if (!px.stored_ts)
            return ahl_fail(err, AHL_ECORRUPT, "no StoredTransferSyntaxUID beside its frames");
        if ((rc = describe(inst, &px, err)) < 0)
            return rc;
        uint64_t total = px.frame_size * json_array_size(px.frames);
        if (total >= 0xFFFFFFFEu)
            return ahl_fail(err, AHL_ETOOBIG,
                            "%" PRIu64 " bytes of native pixel data do not fit one element", total);
        p10px.length = total;
        memcpy(p10px.vr, px.d.bits_allocated > 8 ? "OW" : "OB", 3);
    }
    snprintf(path, sizeof path, "%s/%s.dcm", out_dir, sop);
    snprintf(tmp, sizeof tmp, "%s/.%s.dcm.tmp", out_dir, sop);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
        return ahl_fail(err, AHL_EIO, "cannot create %s: %s", tmp, strerror(errno));
    rc = ahl_p10_write(doc, sop, has_pixels ? &p10px : NULL, ahl_p10_sink_fd, &fd, err);
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
    uint64_t version = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data-dir") && has_value) {
            dir = argv[++i];
        } else if (!strcmp(a, "--datastore-id") && has_value) {
            ds = argv[++i];
        } else if (!strcmp(a, "--image-set-id") && has_value) {
            set = argv[++i];
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

    char db[4096], frames_root[4200];
    struct stat st;
    struct ahl_err err;
    struct ahl_framestore fs;
    struct ahl_store *s = NULL;
    struct ahl_meta *m = NULL;
    json_t *doc = NULL;
    int status = 1, rc;
    size_t written = 0, failed = 0;

    ahl_err_clear(&err);
    snprintf(db, sizeof db, "%s/%s", dir, AHL_STORE_SQLITE_FILE);
    if (stat(db, &st) < 0) {
        fprintf(stderr, "ahilite export: no database at %s\n", db);
        return 2;
    }
    snprintf(frames_root, sizeof frames_root, "%s/frames", dir);
    if (ahl_framestore_attach(&fs, frames_root, &err) < 0) {
        fprintf(stderr, "ahilite export: %s\n", err.msg);
        return 2;
    }
    if ((rc = ahl_store_open_sqlite(dir, 1, &s)) < 0) {
        fprintf(stderr, "ahilite export: cannot open %s: %s\n", db, ahl_strerror(rc));
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
            if (export_instance(doc, sop, inst, &fs, out_dir, &err) < 0) {
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
    json_decref(doc);
    ahl_meta_close(m);
    ahl_store_close(s);
    return status;
}
