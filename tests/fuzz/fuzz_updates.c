// module: import
/* Fuzzes the DICOMUpdates path: random bytes become the two blobs, which go through the parser,
 * the structural validator and the rules walk (against a fixed current document), and whatever
 * parses also through every VR checker and the import grouping functions.
 *
 * Input layout: byte 0 holds flags (bit 0 force, bit 1 aws_primary_rules, bit 2 is_primary,
 * bit 3 check against the current document, bit 4 omit updatableAttributes, bit 5 omit
 * removableAttributes); the rest is split at its first NUL byte into updatableAttributes (before)
 * and removableAttributes (after; absent when there is no NUL). */
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/group.h"
#include "meta/update_request.h"

static const char *const current_text =
    "{\"SchemaVersion\":\"1.1\",\"Patient\":{\"DICOM\":{\"PatientName\":\"A^B\",\"PatientID\":"
    "\"7\"}},\"Study\":{\"DICOM\":{\"StudyInstanceUID\":\"1.2.8\",\"StudyID\":\"5\"},\"Series\":{"
    "\"1.2.3\":{\"DICOM\":{\"SeriesInstanceUID\":\"1.2.3\",\"Modality\":\"CT\"},\"Instances\":{"
    "\"1.2.3.4\":{\"DICOM\":{\"SOPInstanceUID\":\"1.2.3.4\"},\"DICOMVRs\":{}}}}}}}";

static const char *const vrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL",
                                  "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
                                  "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
                                  "UI", "UL", "UN", "UR", "US", "UT", "UV"};

/* Every error must come with its code and a message. */
static void check_err(int rc, const struct ahl_err *err)
{
    if (rc < 0 && (err->code != rc || err->msg[0] == '\0'))
        abort();
}

static void exercise_values(const json_t *dicom)
{
    if (!json_is_object(dicom))
        return;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)dicom, k, v)
    {
        for (size_t i = 0; i < sizeof vrs / sizeof vrs[0]; i++)
            (void)ahl_rules_vr_problem(vrs[i], v);
    }
}

static void exercise_group(const json_t *doc, const json_t *current)
{
    char key[AHL_GROUP_KEY_LEN + 1];
    struct ahl_group_diff diff;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_group_key(doc, key, &err);
    check_err(rc, &err);
    rc = ahl_group_fingerprint(doc, key, &err);
    check_err(rc, &err);
    rc = ahl_group_compare(current, doc, &diff, &err);
    if (rc == AHL_GROUP_CONFLICT && diff.message[0] == '\0')
        abort();
    rc = ahl_group_compare(doc, doc, &diff, &err);
    if (rc == AHL_GROUP_CONFLICT)
        abort(); /* a document always agrees with itself */
    rc = ahl_group_check_limits(doc, &err);
    check_err(rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *current;
    if (!current) {
        current = json_loads(current_text, 0, NULL);
        if (!current)
            abort();
    }
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const char *nul = memchr(rest, '\0', n);
    const char *upd = rest, *rem = NULL;
    size_t upd_len = n, rem_len = 0;
    if (nul) {
        upd_len = (size_t)(nul - rest);
        rem = nul + 1;
        rem_len = n - upd_len - 1;
    }
    if (flags & 0x10)
        upd = NULL, upd_len = 0;
    if (flags & 0x20)
        rem = NULL, rem_len = 0;

    struct ahl_updates u;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_updates_parse(upd, upd_len, rem, rem_len, 0, &u, &err);
    check_err(rc, &err);
    if (rc < 0) {
        if (u.updatable || u.removable)
            abort();
        return 0;
    }
    if ((upd && !json_is_object(u.updatable)) || (rem && !json_is_object(u.removable)))
        abort();
    struct ahl_rules_opts opts = {
        .force = flags & 1,
        .aws_primary_rules = flags & 2,
        .is_primary = flags & 4,
    };
    rc = ahl_updates_check(&u, (flags & 8) ? current : NULL, &opts, &err);
    check_err(rc, &err);
    if (rc < 0 && rc != AHL_EINVAL)
        abort();

    json_t *docs[2] = {u.updatable, u.removable};
    for (int d = 0; d < 2; d++) {
        if (!docs[d])
            continue;
        /* A validated blob passes validation again (the validator is deterministic). */
        if (ahl_updates_validate(d ? "removableAttributes" : "updatableAttributes", docs[d],
                                 NULL) != 0)
            abort();
        const json_t *patient = json_object_get(docs[d], "Patient");
        const json_t *study = json_object_get(docs[d], "Study");
        exercise_values(patient ? json_object_get(patient, "DICOM") : NULL);
        exercise_values(study ? json_object_get(study, "DICOM") : NULL);
        exercise_group(docs[d], current);
    }
    ahl_updates_release(&u);
    return 0;
}
