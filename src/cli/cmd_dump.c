/* ahilite dump: prints the HealthImaging metadata document of DICOM files. */
#include <stdio.h>

int ahl_cmd_dump(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ahilite dump: the DICOM reader is not built yet\n");
    return 2;
}
