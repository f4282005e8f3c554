/* ahilite frames: transcodes every frame of DICOM files exactly as import does (decode, storage
 * policy, HTJ2K encode, verification, metadata), optionally writes the stored frames into a frame
 * store directory, and prints one JSON line per file with the instance's StoredTransferSyntaxUID
 * and its ImageFrames entries. For checking the pixel pipeline on real files without a server. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/buf.h"
#include "blob/framestore.h"
#include "dicom/dataset.h"
#include "dicom/p10.h"
#include "frames/frames.h"
#include "import/import.h"
#include "json/json.h"

#include "base/banned.h"

#define FRAMES_MAX_FILE ((size_t)4 << 30) /* HealthImaging's per-file import quota */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: ahilite frames FILE... [--out DIR] [--lossless-storage-format FORMAT]\n\n"
        "Transcodes every frame of each DICOM file as import would and prints, per file, a\n"
        "JSON line: {\"file\", \"TransferSyntaxUID\", \"NumberOfFrames\", \"ImageFrames\":\n"
        "[{\"ID\", \"FrameSizeInBytes\",\n"
        "\"MinPixelValue\", \"MaxPixelValue\", \"PixelDataChecksumFromBaseToFullResolution\"}],\n"
        "\"StoredTransferSyntaxUID\", \"ContentType\", \"PhotometricInterpretation\"}\n"
        "or {\"file\", \"error\"}.\n\n"
        "  --out DIR   also store the frames in a frame store rooted at DIR\n"
        "              (DIR/<id[0:2]>/<id[2:4]>/<id>)\n"
        "  --lossless-storage-format FORMAT\n"
        "              encode as a data store created with this losslessStorageFormat\n"
        "              would: HTJ2K (the default; 1.2.840.10008.1.2.4.202) or\n"
        "              JPEG_2000_LOSSLESS (1.2.840.10008.1.2.4.90)\n\n"
        "Exit status: 0 all frames stored, 1 some file failed, 2 usage.\n");
}

/* The bytes of the logical stream the reader's offsets refer to: the file itself, or for a
 * deflated file the bytes up to the end of the meta group followed by the inflated dataset. */
struct stream {
    uint8_t *p;
    size_t n;
};

static int load_file(const char *path, struct stream *s, struct ahl_err *err)
{
    s->p = NULL;
    s->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ahl_fail(err, AHL_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > FRAMES_MAX_FILE) {
        close(fd);
        return ahl_fail(err, AHL_ETOOBIG, "%s: cannot stat or larger than 4 GB", path);
    }
    s->p = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!s->p) {
        close(fd);
        return ahl_fail(err, AHL_ENOMEM, "out of memory reading %s", path);
    }
    while (s->n < (size_t)st.st_size) {
        ssize_t r = read(fd, s->p + s->n, (size_t)st.st_size - s->n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        s->n += (size_t)r;
    }
    close(fd);
    if (s->n != (size_t)st.st_size)
        return ahl_fail(err, AHL_EIO, "short read of %s", path);
    return 0;
}

static int inflate_dataset(const struct ahl_dcm_file *f, struct stream *s, struct ahl_err *err)
{
    const struct ahl_dcm_elem *gl = ahl_dcm_find(&f->meta, AHL_DCM_TAG(0x0002, 0x0000));
    if (!gl || !gl->value || gl->value_len != 4)
        return ahl_fail(err, AHL_EPARSE, "deflated file without FileMetaInformationGroupLength");
    uint32_t glen = (uint32_t)gl->value[0] | (uint32_t)gl->value[1] << 8 |
                    (uint32_t)gl->value[2] << 16 | (uint32_t)gl->value[3] << 24;
    size_t meta_end = (f->has_preamble ? 132u : 0u) + 12u + glen;
    if (meta_end > s->n)
        return ahl_fail(err, AHL_EPARSE, "meta group runs past the end of the file");
    struct ahl_buf out;
    ahl_buf_init(&out, FRAMES_MAX_FILE);
    int rc = ahl_buf_add(&out, s->p, meta_end);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (rc == 0 && inflateInit2(&z, -15) != Z_OK)
        rc = AHL_ENOMEM;
    if (rc == 0) {
        z.next_in = s->p + meta_end;
        z.avail_in = (uInt)(s->n - meta_end);
        uint8_t chunk[65536];
        int zr = Z_OK;
        while (rc == 0 && zr == Z_OK) {
            z.next_out = chunk;
            z.avail_out = sizeof chunk;
            zr = inflate(&z, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
                rc = ahl_fail(err, AHL_EPARSE, "inflating the dataset failed");
            else if (ahl_buf_add(&out, chunk, sizeof chunk - z.avail_out) < 0)
                rc = ahl_fail(err, AHL_ETOOBIG, "inflated dataset too large");
            /* The whole file is in memory: no progress means the input ran out first. */
            if (zr == Z_BUF_ERROR)
                rc = ahl_fail(err, AHL_EPARSE,
                              "deflated data ends at file offset %zu before the end of the "
                              "compressed stream",
                              s->n);
        }
        inflateEnd(&z);
    }
    if (rc < 0) {
        ahl_buf_release(&out);
        return rc;
    }
    free(s->p);
    s->p = (uint8_t *)ahl_buf_detach(&out, &s->n);
    return s->p ? 0 : AHL_ENOMEM;
}

static int stream_read(void *ctx, uint64_t off, void *buf, size_t n)
{
    const struct stream *s = ctx;
    if (off > s->n || n > s->n - off)
        return AHL_EPARSE;
    memcpy(buf, s->p + off, n);
    return 0;
}

/* Gathers frame i's bytes: the native slice or the frame's fragments concatenated. */
static int frame_bytes(const struct ahl_dcm_file *f, const struct ahl_pixel_desc *d,
                       const struct stream *s, const struct ahl_frame_span *spans, uint32_t i,
                       uint8_t **out, size_t *len, struct ahl_err *err)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    if (!px->encapsulated) {
        if (px->value_offset > s->n || px->value_length > s->n - px->value_offset)
            return ahl_fail(err, AHL_EPARSE, "pixel data runs past the end of the file");
        return ahl_native_frame_extract(d, s->p + px->value_offset, (size_t)px->value_length, i,
                                        out, len, err);
    }
    return ahl_frames_gather(px, &spans[i], stream_read, (void *)s, out, len, err);
}

static void print_error(const char *path, const struct ahl_err *err)
{
    struct ahl_buf b;
    ahl_buf_init(&b, 1 << 20);
    ahl_buf_adds(&b, "{\"file\":");
    ahl_json_write_string(path, strlen(path), &b);
    ahl_buf_adds(&b, ",\"error\":");
    ahl_json_write_string(err->msg, strlen(err->msg), &b);
    ahl_buf_adds(&b, "}\n");
    fwrite(b.data, 1, b.len, stdout);
    ahl_buf_release(&b);
}

static int process(const char *path, struct ahl_framestore *fs, enum ahl_lossless_format fmt,
                   struct ahl_err *err)
{
    struct ahl_dcm_file *f = NULL;
    struct stream s = {0};
    struct ahl_frame_span *spans = NULL;
    struct ahl_stored_frame sf = {0};
    struct ahl_pixel_desc d;
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    int rc = ahl_p10_read_path(path, NULL, &f, err);
    if (rc < 0)
        goto out;
    if (!f->pixel.present) {
        rc = ahl_fail(err, AHL_EUNSUPPORTED, "no pixel data");
        goto out;
    }
    if (f->pixel.tag != AHL_TAG_PIXEL_DATA) {
        rc = ahl_fail(err, AHL_EUNSUPPORTED, "float pixel data is not supported");
        goto out;
    }
    if ((rc = ahl_pixel_desc_from_dataset(&f->ds, f->transfer_syntax, &d, err)) < 0)
        goto out;
    /* Refuse a frame too costly to transcode before the file is loaded and inflated: the
     * transcode would refuse it anyway, after this command had spent its size in memory. */
    if ((rc = ahl_frame_cost_check_as(&d, f->pixel.encapsulated ? 0 : ahl_native_frame_size(&d),
                                      fmt, NULL, err)) < 0)
        goto out;
    if ((rc = load_file(path, &s, err)) < 0 ||
        (f->deflated && (rc = inflate_dataset(f, &s, err)) < 0))
        goto out;
    if (f->pixel.encapsulated) {
        spans = calloc(d.number_of_frames, sizeof *spans);
        if (!spans) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = ahl_frames_map_fragments(&f->pixel, d.number_of_frames, stream_read, &s, spans,
                                           NULL, err)) < 0)
            goto out;
    }
    ahl_buf_adds(&b, "{\"file\":");
    ahl_json_write_string(path, strlen(path), &b);
    ahl_buf_addf(&b, ",\"TransferSyntaxUID\":\"%s\",\"NumberOfFrames\":%u,\"ImageFrames\":[",
                 d.transfer_syntax, d.number_of_frames);
    for (uint32_t i = 0; i < d.number_of_frames; i++) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        if ((rc = frame_bytes(f, &d, &s, spans, i, &bytes, &n, err)) < 0)
            goto out;
        rc = ahl_import_transcode_frame(&d, bytes, n, fmt, i + 1, &sf, err);
        free(bytes);
        if (rc < 0)
            goto out;
        if (fs && (rc = ahl_framestore_put(fs, sf.id, sf.data, sf.len, err)) < 0)
            goto out;
        ahl_buf_addf(&b,
                     "%s{\"ID\":\"%s\",\"FrameSizeInBytes\":%llu,\"MinPixelValue\":%lld,"
                     "\"MaxPixelValue\":%lld,\"PixelDataChecksumFromBaseToFullResolution\":[",
                     i ? "," : "", sf.id, (unsigned long long)sf.frame_size_in_bytes,
                     (long long)sf.min_pixel, (long long)sf.max_pixel);
        for (size_t k = 0; k < sf.n_levels; k++)
            ahl_buf_addf(&b, "%s{\"Width\":%u,\"Height\":%u,\"Checksum\":%u}", k ? "," : "",
                         sf.levels[k].width, sf.levels[k].height, sf.levels[k].checksum);
        ahl_buf_adds(&b, "]}");
        if (i + 1 == d.number_of_frames)
            ahl_buf_addf(&b,
                         "],\"StoredTransferSyntaxUID\":\"%s\",\"ContentType\":\"%s\","
                         "\"PhotometricInterpretation\":\"%s\"}\n",
                         sf.stored_transfer_syntax, sf.content_type, sf.photometric);
        ahl_stored_frame_release(&sf);
    }
    fwrite(b.data, 1, b.len, stdout);
out:
    ahl_stored_frame_release(&sf);
    ahl_buf_release(&b);
    free(spans);
    free(s.p);
    ahl_dcm_file_free(f);
    return rc;
}

int ahl_cmd_frames(int argc, char **argv)
{
    const char *out_dir = NULL;
    enum ahl_lossless_format fmt = AHL_LOSSLESS_HTJ2K;
    struct ahl_err err = {0};
    int nfiles = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "--lossless-storage-format")) {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            if (!strcmp(argv[i], "--out")) {
                out_dir = argv[++i];
            } else if (ahl_lossless_format_parse(argv[++i], &fmt, &err) < 0) {
                fprintf(stderr, "ahilite frames: %s\n", err.msg);
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ahilite frames: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            nfiles++;
        }
    }
    if (nfiles == 0) {
        usage(stderr);
        return 2;
    }
    struct ahl_framestore fs;
    if (out_dir && ahl_framestore_open(&fs, out_dir, &err) < 0) {
        fprintf(stderr, "ahilite frames: %s\n", err.msg);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "--lossless-storage-format")) {
            i++;
            continue;
        }
        ahl_err_clear(&err);
        if (process(argv[i], out_dir ? &fs : NULL, fmt, &err) < 0) {
            print_error(argv[i], &err);
            failed++;
        }
    }
    fflush(stdout);
    return failed ? 1 : 0;
}
