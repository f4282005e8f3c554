/* Unit tests for the Original Attributes Sequence (src/export/history.c) over the real engine and
 * SQLite store: a set of two instances is updated at the Patient level, then at one instance,
 * then an attribute is added; each version that changed an instance gives it one item holding the
 * values replaced (an added attribute empty), and a version selected earlier, or the first, gives
 * none. Reading only one series and instance gives that instance's items alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "export/export.h"
#include "meta_fixture.h"

#define SERIES "1.2.3.1"
#define SOP_A "1.2.3.1.1"
#define SOP_B "1.2.3.1.2"

static void update(struct fx *f, const char *id, uint64_t latest, const char *json)
{
    struct ahl_err err;
    struct ahl_meta_update u = {
        .latest_version = latest, .updatable = json, .updatable_len = strlen(json)};
    if (ahl_meta_update(f->m, f->ds, id, &u, NULL, &err) < 0)
        fail_msg("update: %s", err.msg);
}

/* The one ModifiedAttributesSequence item of item i of sop's list. */
static json_t *modified(json_t *hist, const char *sop, size_t i)
{
    json_t *item = json_array_get(json_object_get(hist, sop), i);
    assert_non_null(item);
    assert_string_equal(json_string_value(json_object_get(item, "ModifyingSystem")), "ahilite");
    assert_string_equal(
        json_string_value(json_object_get(item, "ReasonForTheAttributeModification")), "CORRECT");
    assert_true(json_is_null(json_object_get(item, "SourceOfPreviousValues")));
    const char *when = json_string_value(json_object_get(item, "AttributeModificationDateTime"));
    assert_non_null(when);
    assert_int_equal(strlen(when), 26); /* YYYYMMDDHHMMSS.FFFFFF+0000 */
    json_t *mods = json_object_get(item, "ModifiedAttributesSequence");
    assert_int_equal(json_array_size(mods), 1);
    return json_array_get(mods, 0);
}

static void test_history(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    struct ahl_meta_create_opts o = {.is_primary = false};
    json_t *hist = NULL;
    assert_non_null(f);
    json_t *doc = json_pack(
        "{s:{s:{s:s}},s:{s:{s:s},s:{s:{s:{s:s},s:{s:{s:{s:s,s:s}},s:{s:{s:s,s:s}}}}}}}", "Patient",
        "DICOM", "PatientName", "First^Name", "Study", "DICOM", "StudyInstanceUID", "1.2.3",
        "Series", SERIES, "DICOM", "SeriesInstanceUID", SERIES, "Instances", SOP_A, "DICOM",
        "SOPInstanceUID", SOP_A, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7", SOP_B, "DICOM",
        "SOPInstanceUID", SOP_B, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7");
    assert_non_null(doc);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, &o, &info, &err), 0);
    json_decref(doc);
    const char *id = info.set.id;

    /* The first version: nothing to record, and nothing read. */
    assert_int_equal(ahl_export_history(f->m, f->ds, id, 0, NULL, NULL, &hist, &err), 0);
    assert_int_equal(json_object_size(hist), 0);
    json_decref(hist);

    update(f, id, 1,
           "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"Second\"}}}");
    update(f, id, 2,
           "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"" SERIES "\":{\"Instances\":{\"" SOP_A
           "\":{\"DICOM\":{\"ImageComments\":\"added\"}}}}}}}");
    update(f, id, 3, "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"Third\"}}}");

    assert_int_equal(ahl_export_history(f->m, f->ds, id, 0, NULL, NULL, &hist, &err), 0);
    /* A: the name twice, and the added comment (empty before it). */
    assert_int_equal(json_array_size(json_object_get(hist, SOP_A)), 3);
    assert_string_equal(json_string_value(json_object_get(modified(hist, SOP_A, 0), "PatientName")),
                        "First^Name");
    json_t *added = modified(hist, SOP_A, 1);
    assert_int_equal(json_object_size(added), 1);
    assert_true(json_is_null(json_object_get(added, "ImageComments")));
    assert_string_equal(json_string_value(json_object_get(modified(hist, SOP_A, 2), "PatientName")),
                        "Second");
    /* B: only the Patient-level edits. */
    assert_int_equal(json_array_size(json_object_get(hist, SOP_B)), 2);
    assert_string_equal(json_string_value(json_object_get(modified(hist, SOP_B, 1), "PatientName")),
                        "Second");
    json_decref(hist);

    /* Version 2 selected: only the first edit is behind it. */
    assert_int_equal(ahl_export_history(f->m, f->ds, id, 2, NULL, NULL, &hist, &err), 0);
    assert_int_equal(json_array_size(json_object_get(hist, SOP_A)), 1);
    assert_int_equal(json_array_size(json_object_get(hist, SOP_B)), 1);
    json_decref(hist);

    /* One instance, read as a part of each version. */
    assert_int_equal(ahl_export_history(f->m, f->ds, id, 0, SERIES, SOP_B, &hist, &err), 0);
    assert_int_equal(json_object_size(hist), 1);
    assert_int_equal(json_array_size(json_object_get(hist, SOP_B)), 2);
    json_decref(hist);

    assert_int_equal(ahl_export_history(f->m, f->ds, id, 9, NULL, NULL, &hist, &err),
                     AHL_ENOTFOUND);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
