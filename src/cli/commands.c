/* The subcommand table. Each subcommand lives in its own cmd_<name>.c, except `bench`, which
 * only runs the benchmarks' own program. */
#include "cli/cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/banned.h"

/* `ahilite bench ...`: the benchmarks are a program of their own (bench/, built as ahilite-bench
 * beside ahilite), so the server carries none of their code. This runs ahilite-bench from the
 * directory of the running ahilite with the same arguments. */
static int cmd_bench(int argc, char **argv)
{
    char exe[4096], path[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "ahilite bench: cannot find ahilite's own directory: %s\n",
                strerror(errno));
        return 1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    snprintf(path, sizeof path, "%.*s/ahilite-bench", slash ? (int)(slash - exe) : 0, exe);
    (void)argc;
    argv[0] = path; /* argv[argc] is NULL, as main's */
    execv(path, argv);
    fprintf(stderr,
            "ahilite bench: cannot run %s: %s\n"
            "  the benchmarks are built as ahilite-bench beside ahilite"
            " (cmake --build BUILD_DIR --target ahilite-bench)\n",
            path, strerror(errno));
    return 1;
}

const struct ahl_cli_command ahl_cli_commands[] = {
    {"dump", "print the HealthImaging metadata document of DICOM files", ahl_cmd_dump},
    {"inspect", "show what the DICOM reader reads in files (--json: DICOM JSON)", ahl_cmd_inspect},
    {"frames", "transcode DICOM frames as import would; print their metadata", ahl_cmd_frames},
    {"import", "import DICOM files and directories into a data store", ahl_cmd_import},
    {"serve", "run the HealthImaging API server (AWS CLI and SDKs work against it)", ahl_cmd_serve},
    {"export", "write the instances of an image set as DICOM Part-10 files", ahl_cmd_export},
    {"diff", "print what changed between two versions of an image set (JSON)", ahl_cmd_diff},
    {"check", "verify every stored chunk and every version of every image set", ahl_cmd_check},
    {"gc", "remove the versions, chunks and frames of deleted image sets", ahl_cmd_gc},
    {"migrate", "copy a data directory onto another store (PostgreSQL + S3) and verify it",
     ahl_cmd_migrate},
    {"bench", "run the benchmarks (ahilite-bench, built beside ahilite)", cmd_bench},
    {NULL, NULL, NULL},
};
