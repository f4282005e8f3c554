// module: import
/* Fuzzes the DICOM JSON metadata files of import mappings (import/mapping.h): random bytes are
 * parsed as the file of a study mapping and of a study-and-series mapping, and what parses is
 * overlaid on a fixed single-instance document, which must then still hold its one series and
 * one instance. The first byte picks whether the series mapping is tried first (the order the
 * set is built in must not matter). */
#include "fuzz.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "import/mapping.h"

#define STUDY "1.2.840.1"
#define SERIES "1.2.840.1.2"

static const char *const doc_text =
    "{\"Patient\":{\"DICOM\":{\"PatientName\":\"A^B\",\"PatientID\":\"7\"}},\"Study\":{\"DICOM\":"
    "{\"StudyInstanceUID\":\"" STUDY "\",\"StudyID\":\"5\"},\"Series\":{\"" SERIES "\":{\"DICOM\":"
    "{\"SeriesInstanceUID\":\"" SERIES "\",\"Modality\":\"CT\"},\"Instances\":{\"1.2.3.4\":{"
    "\"DICOM\":{\"SOPInstanceUID\":\"1.2.3.4\"},\"DICOMVRs\":{}}}}}}}";

/* Every error must come with its code and a message. */
static void check_err(int rc, const struct ahl_err *err)
{
    if (rc < 0 && (err->code != rc || err->msg[0] == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool series_first = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    struct ahl_mapping_set *set = ahl_mapping_set_new();
    if (!set)
        return 0;
    for (int k = 0; k < 2; k++) {
        bool with_series = (k == 0) == series_first;
        struct ahl_err err;
        json_t *levels = NULL;
        ahl_err_clear(&err);
        int rc = ahl_mapping_parse(text, len, STUDY, with_series ? SERIES : NULL, &levels, &err);
        check_err(rc, &err);
        if ((rc == 0) != (levels != NULL))
            abort();
        if (ahl_mapping_set_add(set, STUDY, with_series ? SERIES : NULL, "in/meta.json", levels,
                                rc < 0 ? err.msg : NULL) < 0)
            break;
    }
    json_t *doc = json_loads(doc_text, 0, NULL);
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_mapping_set_apply(set, doc, &err);
    check_err(rc, &err);
    json_t *series = json_object_get(json_object_get(doc, "Study"), "Series");
    json_t *one = json_object_get(series, SERIES);
    if (json_object_size(series) != 1 || !one ||
        json_object_size(json_object_get(one, "Instances")) != 1)
        abort();
    json_decref(doc);
    ahl_mapping_set_free(set);
    return 0;
}
