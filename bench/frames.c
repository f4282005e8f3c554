/* ahilite-bench frames: HTJ2K encode throughput of the frames module, measured in CPU time of the
 * calling thread so the figure is per core even on a shared machine. Synthesizes CT-like frames
 * (smooth anatomy, noise, 12 bits stored in 16), writes each as a 16-bit PGM for ojph_compress
 * (bench/frames.sh runs it on the same frames), then times, for each frame:
 *   encode   ahl_htj2k_encode (OpenJPH, lossless RPCL, 64x64 blocks, TLM) alone;
 *   import   ahl_frame_transcode (native decode, encode, bit-exact verification decode,
 *            per-level checksums, min/max, id): what import pays per frame.
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
               "  encodes N synthesized WIDTHxHEIGHT 12-bit frames to HTJ2K, alone and as import"
               " does,\n  writing each as a PGM into PGM_DIR; prints \"key value\" lines"
               " (bench/frames.sh).\n");
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

/* Encodes one frame alone and transcodes it as import does, adding the CPU seconds of each to
 * *t_encode and *t_import and the encoded size to *bytes_out. 0 or -1. */
static int time_frame(const struct ahl_pixel_desc *d, const uint16_t *px, size_t pixels,
                      double *t_encode, double *t_import, size_t *bytes_out)
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
    int rc = ahl_htj2k_encode(&raw, &out, &len, &err);
    *t_encode += ahl__bench_thread_cpu_s() - t0;
    ahl_raw_frame_release(&raw);
    if (rc < 0) {
        fprintf(stderr, "ahilite-bench frames: encode: %s\n", err.msg);
        return -1;
    }
    *bytes_out += len;
    free(out);

    struct ahl_stored_frame sf;
    t0 = ahl__bench_thread_cpu_s();
    if (ahl_frame_transcode(d, (const uint8_t *)px, pixels * 2, &sf, &err) < 0) {
        fprintf(stderr, "ahilite-bench frames: transcode: %s\n", err.msg);
        return -1;
    }
    *t_import += ahl__bench_thread_cpu_s() - t0;
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
    double t_encode = 0, t_import = 0;
    size_t bytes_out = 0;
    if (!px) {
        fprintf(stderr, "ahilite-bench frames: out of memory\n");
        return 1;
    }
    for (int k = 0; k < n; k++) {
        synth(px, w, h, k);
        if (write_pgm(argv[4], k, px, w, h) < 0 ||
            time_frame(&d, px, pixels, &t_encode, &t_import, &bytes_out) < 0) {
            free(px);
            return 1;
        }
    }
    double mpix = (double)pixels * n / 1e6;
    printf("frames %d\nwidth %u\nheight %u\n", n, w, h);
    printf("encode_cpu_s %.6f\nencode_mpix_per_s %.2f\n", t_encode, mpix / t_encode);
    printf("import_cpu_s %.6f\nimport_mpix_per_s %.2f\n", t_import, mpix / t_import);
    printf("bytes_per_frame %.0f\nratio %.3f\n", (double)bytes_out / n,
           (double)pixels * 2 * n / (double)bytes_out);
    free(px);
    return 0;
}
