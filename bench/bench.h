/* ahilite-bench: the benchmarks, built as a program of their own beside ahilite (bench/README.md
 * lists them; bench/RESULTS.md records their figures). Each subcommand is one function taking
 * the arguments after the program name (argv[0] is the subcommand) and returning the exit
 * status: 0 success, 1 the run failed, 2 usage error. This header also declares the helpers the
 * subcommands share (bench/common.c). */
#ifndef AHL_BENCH_BENCH_H
#define AHL_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* The subcommands, one file each. */
int ahl__bench_update(int argc, char **argv);         /* update.c */
int ahl__bench_search(int argc, char **argv);         /* search.c */
int ahl__bench_http_load(int argc, char **argv);      /* http_load.c */
int ahl__bench_update_threads(int argc, char **argv); /* update_threads.c */
int ahl__bench_frames(int argc, char **argv);         /* frames.c */
int ahl__bench_auth(int argc, char **argv);           /* auth.c */
int ahl__bench_qido(int argc, char **argv);           /* qido.c */

/* True when argv[first..] asks for help (--help or -h anywhere). */
int ahl__bench_wants_help(int argc, char **argv, int first);

struct ahl__bench_opt {
    const char *name; /* "--sets" */
    long *value;      /* receives the count given after it */
};
/* Parses argv[first..]: "--data-dir DIR" into *data_dir, and each option of opts followed by a
 * count of 1..10,000,000. 0, or -1 for anything else (the caller prints its usage). */
int ahl__bench_parse(int argc, char **argv, int first, const struct ahl__bench_opt *opts,
                     size_t nopts, const char **data_dir);

/* The p-quantile (0..1) of v[0..n), which it sorts; 0 when n is 0. */
double ahl__bench_pct(double *v, size_t n, double p);

/* Milliseconds since t0_ns (an ahl_mono_ns reading). */
double ahl__bench_ms_since(uint64_t t0_ns);
/* CPU seconds (user + system) of the whole process, all threads. */
double ahl__bench_process_cpu_s(void);
/* CPU seconds of the calling thread: a per-core figure even on a shared machine. */
double ahl__bench_thread_cpu_s(void);

/* Makes a fresh scratch directory "<base or /tmp>/<prefix>-XXXXXX" into dir (cap bytes).
 * 0, or -1 with errno set. */
int ahl__bench_scratch_dir(const char *base, const char *prefix, char *dir, size_t cap);
/* Removes dir and everything under it (the benchmarks' own scratch trees: files and
 * directories only). 0, or -1 when something could not be removed. */
int ahl__bench_remove_tree(const char *dir);

/* splitmix64: reproducible scattering of ids and values. */
uint64_t ahl__bench_mix(uint64_t x);

/* The size of a query plan's text (AHL__BENCH_PLAN_MAX bytes, NUL included). */
#define AHL__BENCH_PLAN_MAX 512
/* A store plan callback: appends line to the text ctx (a char[AHL__BENCH_PLAN_MAX]), lines
 * separated by "; ". Returns 0. */
int ahl__bench_plan_line(void *ctx, const char *line);

struct ahl_store;
/* Creates an ACTIVE data store with a random id in s; id receives it (33 bytes). 0 or -1. */
int ahl__bench_make_datastore(struct ahl_store *s, char *id);

#endif /* AHL_BENCH_BENCH_H */
