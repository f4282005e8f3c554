/* ahilite-bench frames: HTJ2K and JPEG 2000 lossless encode throughput of the frames module,
 * measured in CPU time of the calling thread so the figure is per core even on a shared machine.
 * Synthesizes CT-like frames (smooth anatomy, noise, 12 bits stored in 16), writes each as a 16-bit
 * PGM for ojph_compress (bench/frames.sh runs it on the same frames), then times, for each frame:
 *   encode   ahl_htj2k_encode (OpenJPH, lossless RPCL, 64x64 blocks, TLM) alone;
 *   import   ahl_frame_transcode (native decode, encode, bit-exact verification decode,
 *            per-level checksums, min/max, id): what import pays per frame;
 *   j2k_*    the same two for a JPEG_2000_LOSSLESS data store: ahl_j2k_encode (OpenJPEG,
 *            reversible 5/3, RPCL) and ahl_frame_transcode_as(AHL_LOSSLESS_J2K), whose
 *            verification decode is OpenJPEG's.
 * Usage: ahilite-bench frames N WIDTH HEIGHT PGM_DIR. Prints "key value" lines for frames.sh. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#include "frames/frames.h"
#include "base/banned.h"

static uint32_t rng = 2463534242u;
static uint32_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* A disc of "tissue" with a few brighter structures, air outside, and noise: roughly the entropy
 * of a CT slice, so code-block coding does real work. */
static void synth(uint16_t *px, uint32_t w, uint32_t h, int k)
{
    double cx = w / 2.0, cy = h / 2.0, r = (w < h ? w : h) * 0.42;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            double dx = x - cx, dy = y - cy, d = sqrt(dx * dx + dy * dy);
            double v = 24; /* air */
            if (d < r) {
                v = 1040 + 40 * sin(x * 0.05 + k) * cos(y * 0.07);
                double bx = dx - r * 0.3, by = dy + r * 0.2;
                if (bx * bx + by * by < r * r * 0.04)
                    v = 1900 + (k * 13) % 200; /* bone */
            }
            v += (int)(xorshift() % 41) - 20;
            if (v < 0)
                v = 0;
            if (v > 4095)
                v = 4095;
            px[(size_t)y * w + x] = (uint16_t)v;
        }
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite-bench frames N WIDTH HEIGHT PGM_DIR\n"
               "  encodes N synthesized WIDTHxHEIGHT 12-bit frames to HTJ2K and to JPEG 2000\n"
               "  lossless, alone and as import does, writing each as a PGM into PGM_DIR;\n"
               "  prints \"key value\" lines (bench/frames.sh).\n");
    return status;
}

/* Writes frame k's PGM into dir (maxval 4095, big-endian samples, for ojph_compress). 0 or -1. */
static int write_pgm(const char *dir, int k, const uint16_t *px, uint32_t w, uint32_t h)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/frame%03d.pgm", dir, k);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "P5\n%u %u\n4095\n", w, h);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        fputc(px[i] >> 8, f);
        fputc(px[i] & 0xFF, f);
    }
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* The CPU seconds and bytes of one storage format. */
struct timing {
    enum ahl_lossless_format fmt;
    double encode, import;
    size_t bytes;
};

/* Encodes one frame alone and transcodes it as import does in a data store of t's format, adding
 * the CPU seconds of each and the encoded size to t. 0 or -1. */
static int time_frame(const struct ahl_pixel_desc *d, const uint16_t *px, size_t pixels,
                      struct timing *t)
{
    struct ahl_raw_frame raw;
    struct ahl_err err = {0};
    if (ahl_frame_decode(d, (const uint8_t *)px, pixels * 2, &raw, &err) < 0) {
        fprintf(stderr, "ahilite-bench frames: decode: %s\n", err.msg);
        return -1;
    }
    uint8_t *out;
    size_t len;
    double t0 = ahl__bench_thread_cpu_s();
    int rc = t->fmt == AHL_LOSSLESS_J2K ? ahl_j2k_encode(&raw, &out, &len, &err)
                                        : ahl_htj2k_encode(&raw, &out, &len, &err);
    t->encode += ahl__bench_thread_cpu_s() - t0;
    ahl_raw_frame_release(&raw);
    if (rc < 0) {
        fprintf(stderr, "ahilite-bench frames: encode: %s\n", err.msg);
        return -1;
    }
    t->bytes += len;
    free(out);

    struct ahl_stored_frame sf;
    t0 = ahl__bench_thread_cpu_s();
    if (ahl_frame_transcode_as(d, (const uint8_t *)px, pixels * 2, t->fmt, &sf, &err) < 0) {
        fprintf(stderr, "ahilite-bench frames: transcode: %s\n", err.msg);
        return -1;
    }
    t->import += ahl__bench_thread_cpu_s() - t0;
    ahl_stored_frame_release(&sf);
    return 0;
}

int ahl__bench_frames(int argc, char **argv)
{
    if (ahl__bench_wants_help(argc, argv, 1))
        return usage(stdout, 0);
    if (argc != 5)
        return usage(stderr, 2);
    int n = (int)strtol(argv[1], NULL, 10);
    uint32_t w = (uint32_t)strtol(argv[2], NULL, 10), h = (uint32_t)strtol(argv[3], NULL, 10);
    if (n < 1 || w < 1 || h < 1 || w > 8192 || h > 8192)
        return usage(stderr, 2);
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(h, w, 1, 16, 12, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);

    size_t pixels = (size_t)w * h;
    uint16_t *px = malloc(pixels * 2);
    struct timing ht = {.fmt = AHL_LOSSLESS_HTJ2K}, jt = {.fmt = AHL_LOSSLESS_J2K};
    if (!px) {
        fprintf(stderr, "ahilite-bench frames: out of memory\n");
        return 1;
    }
    for (int k = 0; k < n; k++) {
        synth(px, w, h, k);
        if (write_pgm(argv[4], k, px, w, h) < 0 || time_frame(&d, px, pixels, &ht) < 0 ||
            time_frame(&d, px, pixels, &jt) < 0) {
            free(px);
            return 1;
        }
    }
    double mpix = (double)pixels * n / 1e6;
    printf("frames %d\nwidth %u\nheight %u\n", n, w, h);
    for (int k = 0; k < 2; k++) {
        const struct timing *t = k ? &jt : &ht;
        const char *p = k ? "j2k_" : "";
        printf("%sencode_cpu_s %.6f\n%sencode_mpix_per_s %.2f\n", p, t->encode, p,
               mpix / t->encode);
        printf("%simport_cpu_s %.6f\n%simport_mpix_per_s %.2f\n", p, t->import, p,
               mpix / t->import);
        printf("%sbytes_per_frame %.0f\n%sratio %.3f\n", p, (double)t->bytes / n, p,
               (double)pixels * 2 * n / (double)t->bytes);
    }
    free(px);
    return 0;
}
