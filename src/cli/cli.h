/* The ahilite command line: one function per subcommand, each taking the arguments after the
 * subcommand name (argv[0] is the subcommand) and returning the process exit status.
 * Exit status: 0 success, 1 the work failed (damage found, files failed), 2 usage error. */
#ifndef AHL_CLI_CLI_H
#define AHL_CLI_CLI_H

#include <stddef.h>

struct ahl_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

/* The table of subcommands, ending with a zeroed entry. */
extern const struct ahl_cli_command ahl_cli_commands[];

/* `ahilite bench search` (cmd_bench_search.c), reached through `ahilite bench`; argv[0] is
 * "search". */
int ahl__cmd_bench_search(int argc, char **argv);

/* Helpers the bench modes share (cmd_bench.c). */
struct ahl_store;
struct ahl__bench_opt {
    const char *name; /* "--sets" */
    long *value;      /* receives the count given after it */
};
/* Parses argv[first..]: "--data-dir DIR" into *data_dir, and each option of opts followed by a
 * count of 1..10,000,000. 0, or -1 for anything else (the caller prints its usage). */
int ahl__bench_parse(int argc, char **argv, int first, const struct ahl__bench_opt *opts,
                     size_t nopts, const char **data_dir);
/* The p-quantile (0..1) of v[0..n), which it sorts. */
double ahl__bench_pct(double *v, size_t n, double p);
/* Creates an ACTIVE data store with a random id; id receives it (33 bytes). 0 or -1. */
int ahl__bench_make_datastore(struct ahl_store *s, char *id);

#endif /* AHL_CLI_CLI_H */
