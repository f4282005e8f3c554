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

/* The subcommands (cmd_<name>.c). */
int ahl_cmd_check(int argc, char **argv);
int ahl_cmd_dump(int argc, char **argv);
int ahl_cmd_export(int argc, char **argv);
int ahl_cmd_frames(int argc, char **argv);
int ahl_cmd_import(int argc, char **argv);
int ahl_cmd_inspect(int argc, char **argv);
int ahl_cmd_migrate(int argc, char **argv);
int ahl_cmd_serve(int argc, char **argv);

#endif /* AHL_CLI_CLI_H */
