// module: api
/* Fuzzes the version diff's request parsing (ahl__diff_target): the input is a request target,
 * path and query. Accepted: two ids of 32 [0-9a-z] characters and two versions from 1. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/ops_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = ahl__fuzz_text(data, size);
    if (!text)
        return 0;
    char *q = strchr(text, '?');
    char path[4096];
    size_t pn = q ? (size_t)(q - text) : strlen(text);
    if (pn >= sizeof path)
        pn = sizeof path - 1;
    memcpy(path, text, pn);
    path[pn] = '\0';
    char ds[AHL_ID_LEN + 1], set[AHL_ID_LEN + 1];
    uint64_t v[2];
    struct ahl_err err;
    if (ahl__diff_target("GET", path, q, ds, set, v, &err) == 0) {
        if (strlen(ds) != AHL_ID_LEN || strlen(set) != AHL_ID_LEN || !v[0] || !v[1])
            abort();
        if (!ahl__diff_path(path))
            abort();
    }
    free(text);
    return 0;
}
