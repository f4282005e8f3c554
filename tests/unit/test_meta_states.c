/* The state and status table (meta/states.h): each kind spells exactly the service model's enum
 * values, in the model's order, names and parses are inverse, and unknown text parses to an
 * error. The stored text of existing data is these words, so the table must never drift. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "base/err.h"
#include "meta/states.h"

typedef const char *(*name_fn)(int v);
typedef int (*parse_fn)(const char *text);

static const char *ds_name(int v)
{
    return ahl_datastore_status_name((enum ahl_datastore_status)v);
}
static const char *set_name(int v)
{
    return ahl_imageset_state_name((enum ahl_imageset_state)v);
}
static const char *wf_name(int v)
{
    return ahl_workflow_status_name((enum ahl_workflow_status)v);
}
static const char *job_name(int v)
{
    return ahl_job_status_name((enum ahl_job_status)v);
}

static const struct kind {
    const char *shape; /* the model's enum shape */
    name_fn name;
    parse_fn parse;
} kinds[] = {
    {"DatastoreStatus", ds_name, ahl_datastore_status_parse},
    {"ImageSetState", set_name, ahl_imageset_state_parse},
    {"ImageSetWorkflowStatus", wf_name, ahl_workflow_status_parse},
    {"JobStatus", job_name, ahl_job_status_parse},
};

static void test_table_is_the_model(void **state)
{
    (void)state;
    const char *src = getenv("AHILITE_SRC");
    if (!src)
        skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/models/medical-imaging/2023-07-19/service-2.json", src);
    json_error_t jerr;
    json_t *model = json_load_file(path, 0, &jerr);
    if (!model)
        fail_msg("%s: %s", path, jerr.text);
    json_t *shapes = json_object_get(model, "shapes");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const struct kind *c = &kinds[k];
        json_t *values = json_object_get(json_object_get(shapes, c->shape), "enum");
        assert_true(json_is_array(values));
        size_t i;
        json_t *v;
        json_array_foreach(values, i, v)
        {
            if (strcmp(c->name((int)i), json_string_value(v)) != 0)
                fail_msg("%s[%zu]: table says %s, model %s", c->shape, i, c->name((int)i),
                         json_string_value(v));
            assert_int_equal(c->parse(json_string_value(v)), (int)i);
        }
        /* No value beyond the model's. */
        assert_string_equal(c->name((int)json_array_size(values)), "");
    }
    json_decref(model);
}

static void test_unknown_text(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        assert_int_equal(kinds[k].parse(NULL), AHL_EPARSE);
        assert_int_equal(kinds[k].parse(""), AHL_EPARSE);
        assert_int_equal(kinds[k].parse("active"), AHL_EPARSE);
        assert_int_equal(kinds[k].parse("ACTIVE "), AHL_EPARSE);
        assert_string_equal(kinds[k].name(-1), "");
    }
}

static void test_record_setters(void **state)
{
    (void)state;
    struct ahl_imageset_rec set;
    struct ahl_version_rec ver;
    struct ahl_datastore_rec ds;
    struct ahl_job_rec job;
    memset(&set, 'x', sizeof set);
    ahl_imageset_rec_set_state(&set, AHL_IMAGESET_ACTIVE,
                               AHL_WORKFLOW_UPDATING_FOR_STUDY_CONSISTENCY);
    assert_string_equal(set.state, "ACTIVE");
    assert_string_equal(set.workflow_status, "UPDATING_FOR_STUDY_CONSISTENCY");
    ahl_version_rec_set_state(&ver, AHL_IMAGESET_DELETED,
                              AHL_WORKFLOW_COPYING_WITH_READ_ONLY_ACCESS);
    assert_string_equal(ver.state, "DELETED");
    assert_string_equal(ver.workflow_status, "COPYING_WITH_READ_ONLY_ACCESS");
    ahl_datastore_rec_set_status(&ds, AHL_DATASTORE_CREATE_FAILED);
    assert_string_equal(ds.status, "CREATE_FAILED");
    ahl_job_rec_set_status(&job, AHL_JOB_IN_PROGRESS);
    assert_string_equal(job.status, "IN_PROGRESS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_the_model),
        cmocka_unit_test(test_unknown_text),
        cmocka_unit_test(test_record_setters),
    };
    return cmocka_run_group_tests_name("meta_states", tests, NULL, NULL);
}
