/* The subcommand table. Each subcommand lives in its own cmd_<name>.c. */
#include "cli/cli.h"

#include <stddef.h>

int ahl_cmd_dump(int argc, char **argv);

const struct ahl_cli_command ahl_cli_commands[] = {
    {"dump", "print the HealthImaging metadata document of DICOM files", ahl_cmd_dump},
    {NULL, NULL, NULL},
};
