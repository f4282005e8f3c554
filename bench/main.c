/* ahilite-bench: entry point. Dispatches to the benchmark named by argv[1]. `ahilite bench`
 * runs this program (from the directory ahilite itself is in) with the same arguments. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

#include "base/banned.h"

static const struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"update", "metadata updates and reads on a synthetic set, against a naive store",
     ahl__bench_update},
    {"search", "SearchImageSets by PatientID among N image sets, against a full scan",
     ahl__bench_search},
    {"http-load", "SigV4-signed HTTP load on a running server (bench/http.sh)",
     ahl__bench_http_load},
    {"update-threads", "concurrent updates in one process, no HTTP (bench/update_threads.sh)",
     ahl__bench_update_threads},
    {"frames", "HTJ2K lossless encoding of synthesized frames (bench/frames.sh)",
     ahl__bench_frames},
    {"auth", "verifying a request's SigV4 signature or OIDC bearer token", ahl__bench_auth},
    {"qido", "DICOMweb search (QIDO-RS) among N instances, against a scan", ahl__bench_qido},
};

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: ahilite-bench COMMAND [OPTIONS]   (also: ahilite bench COMMAND ...)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'ahilite-bench COMMAND --help' describes each command's options;"
               " bench/README.md\nlists the benchmarks and bench/RESULTS.md their figures.\n");
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, 2);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return usage(stdout, 0);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ahilite-bench: unknown command '%s'\n\n", argv[1]);
    return usage(stderr, 2);
}
