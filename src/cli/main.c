/* ahilite: entry point. Dispatches to the subcommand named by argv[1]. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "base/banned.h"

#define AHL_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f, "ahilite %s: a self-hosted AWS HealthImaging server\n\n"
               "usage: ahilite COMMAND [OPTIONS]\n\ncommands:\n",
            AHL_VERSION);
    for (const struct ahl_cli_command *c = ahl_cli_commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'ahilite COMMAND --help' describes each command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ahilite %s\n", AHL_VERSION);
        return 0;
    }
    for (const struct ahl_cli_command *c = ahl_cli_commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "ahilite: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
