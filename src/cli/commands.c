/* The subcommand table. Each subcommand lives in its own cmd_<name>.c. */
#include "cli/cli.h"

#include <stddef.h>

int ahl_cmd_bench(int argc, char **argv);
int ahl_cmd_check(int argc, char **argv);
int ahl_cmd_dump(int argc, char **argv);
int ahl_cmd_frames(int argc, char **argv);
int ahl_cmd_import(int argc, char **argv);
int ahl_cmd_inspect(int argc, char **argv);
int ahl_cmd_serve(int argc, char **argv);

const struct ahl_cli_command ahl_cli_commands[] = {
    {"dump", "print the HealthImaging metadata document of DICOM files", ahl_cmd_dump},
    {"inspect", "show what the DICOM reader reads in files (--json: DICOM JSON)", ahl_cmd_inspect},
    {"frames", "transcode DICOM frames as import would; print their metadata", ahl_cmd_frames},
    {"import", "import DICOM files and directories into a data store", ahl_cmd_import},
    {"serve", "run the HealthImaging API server (AWS CLI and SDKs work against it)", ahl_cmd_serve},
    {"check", "verify every stored chunk and every version of every image set", ahl_cmd_check},
    {"bench", "measure metadata updates and reads on a synthetic set (bench update)", ahl_cmd_bench},
    {NULL, NULL, NULL},
};
