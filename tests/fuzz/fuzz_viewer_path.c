// module: api
/* Fuzzes what the viewer reads from a request before touching the file system: the path below
 * /viewer/ (ahl__static_path) and the Accept-Encoding header (ahl__accept_encodings). The first
 * byte chooses: even, the rest is a raw path; odd, an Accept-Encoding value. A path that is
 * accepted must be one that cannot leave the viewer's directory: relative, no empty segment, no
 * segment starting with '.', no backslash or control character, within the length limit. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/viewer_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 2 == 0) {
        char out[AHL__STATIC_PATH_MAX + 1];
        if (ahl__static_path(text, size - 1, out, sizeof out) == 0) {
            size_t n = strlen(out);
            if (n == 0 || n > AHL__STATIC_PATH_MAX || out[0] == '/' || out[n - 1] == '/' ||
                strstr(out, "//") || out[0] == '.' || strstr(out, "/.") || strchr(out, '\\'))
                abort();
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                    abort();
        }
    } else {
        unsigned enc = ahl__accept_encodings(text);
        if (enc & ~(AHL__ENC_GZIP | AHL__ENC_BR))
            abort();
    }
    free(text);
    return 0;
}
