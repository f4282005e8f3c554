/* Unit tests for src/meta/rules.c: every update rule and every VR checker, as tables of accepted
 * and rejected forms. Rejections are checked for their exact path prefix and a telling phrase. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meta/rules.h"

/* ---- VR checkers ----------------------------------------------------------------------------- */

struct vr_case {
    const char *vr;
    const char *json; /* one JSON value */
    bool ok;
};

static const struct vr_case vr_cases[] = {
    /* DA */
    {"DA", "\"20240229\"", true},
    {"DA", "\"20230229\"", false}, /* not a leap year */
    {"DA", "\"20000229\"", true},
    {"DA", "\"19000229\"", false},
    {"DA", "\"20241301\"", false},
    {"DA", "\"20240100\"", false},
    {"DA", "\"2024-01-01\"", false},
    {"DA", "\"2024010\"", false},
    {"DA", "\"20240101 \"", true}, /* trailing padding */
    {"DA", "20240101", false},     /* a number, not a string */
    {"DA", "null", true},
    {"DA", "\"\"", false},
    /* TM */
    {"TM", "\"000000.000\"", true},
    {"TM", "\"23\"", true},
    {"TM", "\"2359\"", true},
    {"TM", "\"235960\"", true}, /* leap second */
    {"TM", "\"235961\"", false},
    {"TM", "\"240000\"", false},
    {"TM", "\"236000\"", false},
    {"TM", "\"120000.1234567\"", false}, /* 7 fraction digits */
    {"TM", "\"120000.123456\"", true},
    {"TM", "\"12:00:00\"", false},
    {"TM", "\"1\"", false},
    {"TM", "\"120\"", false},
    /* DT */
    {"DT", "\"2024\"", true},
    {"DT", "\"202402\"", true},
    {"DT", "\"20240229\"", true},
    {"DT", "\"2024022913\"", true},
    {"DT", "\"20240229131415.123456+0100\"", true},
    {"DT", "\"20240229131415-0500\"", true},
    {"DT", "\"20240230\"", false},
    {"DT", "\"202413\"", false},
    {"DT", "\"20240229131415+1500\"", false},
    {"DT", "\"20240229131415+01\"", false},
    {"DT", "\"20240229131415.1234567\"", false},
    {"DT", "\"24\"", false},
    /* IS */
    {"IS", "\"1 \"", true},
    {"IS", "\" -42\"", true},
    {"IS", "\"+7\"", true},
    {"IS", "\"2147483647\"", true},
    {"IS", "\"2147483648\"", false},
    {"IS", "\"-2147483648\"", true},
    {"IS", "\"-2147483649\"", false},
    {"IS", "\"1.5\"", false},
    {"IS", "\"abc\"", false},
    {"IS", "\"-\"", false},
    {"IS", "\"0000000000001\"", false}, /* 13 characters */
    {"IS", "12", false},
    /* DS */
    {"DS", "\"1.5\"", true},
    {"DS", "\"-0.25 \"", true},
    {"DS", "\".5\"", true},
    {"DS", "\"5.\"", true},
    {"DS", "\"1e10\"", true},
    {"DS", "\"-1.25E-3\"", true},
    {"DS", "\"1e999\"", false},             /* not finite */
    {"DS", "\"1.234567890123456\"", false}, /* 17 characters */
    {"DS", "\"1.23456789012345\"", true},   /* 16 */
    {"DS", "\"1,5\"", false},
    {"DS", "\"e5\"", false},
    {"DS", "\"1e\"", false},
    {"DS", "\"NaN\"", false},
    {"DS", "1.5", false},
    /* UI */
    {"UI", "\"1.2.840.10008.5.1.4.1.1.2\"", true},
    {"UI", "\"1.2.0.3\"", true},
    {"UI", "\"1.2.03\"", false},
    {"UI", "\"1..2\"", false},
    {"UI", "\".1.2\"", false},
    {"UI", "\"1.2.\"", false},
    {"UI", "\"1.2.a\"", false},
    {"UI", "\"1.2.3 \"", true},
    {"UI", "\"1.2345678901234567890123456789012345678901234567890123456789012\"", true},
    {"UI", "\"1.23456789012345678901234567890123456789012345678901234567890123\"", true},
    {"UI", "\"1.234567890123456789012345678901234567890123456789012345678901234\"", false},
    {"UI", "\"\"", false},
    /* PN */
    {"PN", "\"Family^Given^Middle^Prefix^Suffix\"", true},
    {"PN", "\"A^B^C^D^E^F\"", false},
    {"PN", "\"Yamada^Tarou=\\u5c71\\u7530^\\u592a\\u90ce=\"", true},
    {"PN", "\"A=B=C=D\"", false},
    {"PN", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", true},
    {"PN", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", false},
    {"PN", "\"Doe\\nJohn\"", false},
    {"PN", "{\"Alphabetic\":\"Doe^John\"}", false},
    /* a backslash separates values in these VRs, so one value cannot hold it */
    {"LO", "\"a\\\\b\"", false},
    {"PN", "\"A^B\\\\C^D\"", false},
    {"UI", "\"1.2\\\\1.3\"", false},
    /* CS */
    {"CS", "\"CT\"", true},
    {"CS", "\"ORIGINAL_1 X\"", true},
    {"CS", "\"ct\"", false},
    {"CS", "\"C-T\"", false},
    {"CS", "\"ABCDEFGHIJKLMNOP\"", true},
    {"CS", "\"ABCDEFGHIJKLMNOPQ\"", false},
    /* AS */
    {"AS", "\"045Y\"", true},
    {"AS", "\"003W\"", true},
    {"AS", "\"45Y\"", false},
    {"AS", "\"045y\"", false},
    {"AS", "\"045X\"", false},
    /* AE */
    {"AE", "\"STORESCP\"", true},
    {"AE", "\"ABCDEFGHIJKLMNOPQ\"", false},
    {"AE", "\"A\\u00e9\"", false},
    /* SH, LO */
    {"SH", "\"ABCDEFGHIJKLMNOP\"", true},
    {"SH", "\"ABCDEFGHIJKLMNOPQ\"", false},
    {"SH", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", true}, /* chars */
    {"SH", "\"tab\\there\"", false},
    {"LO", "\"Chest CT with contrast\"", true},
    {"LO", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", false},
    {"LO", "\"a\\u001bb\"", true}, /* ESC for ISO 2022 */
    {"LO", "17", false},
    /* ST, LT, UT, UC, UR */
    {"ST", "\"line one\\r\\nline two\\twith tab\"", true},
    {"ST", "\"bell\\u0007\"", false},
    {"LT", "\"back\\\\slash is fine in LT\"", true},
    {"UT", "\"any\\nlength\"", true},
    {"UC", "\"unlimited characters\"", true},
    {"UC", "\"no\\nnewline\"", false},
    {"UR", "\"http://example.com/a?b=c\"", true},
    {"UR", "\"http://example.com/a b\"", false},
    {"UR", "\"http://example.com/ \"", true}, /* trailing padding */
    /* AT */
    {"AT", "\"0020000D\"", true},
    {"AT", "\"0020000\"", false},
    {"AT", "\"0020000G\"", false},
    /* binary numbers */
    {"US", "0", true},
    {"US", "65535", true},
    {"US", "65536", false},
    {"US", "-1", false},
    {"US", "1.0", false},
    {"US", "\"5\"", false},
    {"SS", "-32768", true},
    {"SS", "32768", false},
    {"UL", "4294967295", true},
    {"UL", "4294967296", false},
    {"SL", "-2147483648", true},
    {"SL", "2147483648", false},
    {"UV", "0", true},
    {"UV", "-1", false},
    {"SV", "-9223372036854775807", true},
    {"FL", "1.5", true},
    {"FL", "3", true},
    {"FL", "1e39", false},
    {"FL", "\"1.5\"", false},
    {"FD", "1e300", true},
    {"FD", "\"x\"", false},
    /* base64 */
    {"OB", "\"AAE=\"", true},
    {"OB", "\"AAE\"", false},
    {"OB", "\"A=AE\"", false},
    {"OB", "\"\"", true},
    {"OW", "\"AAE=\"", true},  /* 2 bytes */
    {"OW", "\"AA==\"", false}, /* 1 byte */
    {"OF", "\"AAAAAA==\"", true},
    {"OF", "\"AAAA\"", false},
    {"OD", "\"AAAAAAAAAAA=\"", true},
    {"UN", "\"////\"", true},
    {"OB", "12", false},
    /* SQ */
    {"SQ", "[]", true},
    {"SQ", "\"x\"", false},
};

static void test_vr_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vr_cases / sizeof vr_cases[0]; i++) {
        const struct vr_case *c = &vr_cases[i];
        json_error_t jerr;
        json_t *v = json_loads(c->json, JSON_DECODE_ANY, &jerr);
        if (!v)
            fail_msg("row %zu: bad test JSON %s: %s", i, c->json, jerr.text);
        const char *why = ahl_rules_vr_problem(c->vr, v);
        if (c->ok && why)
            fail_msg("row %zu: VR %s should accept %s, says it expects %s", i, c->vr, c->json, why);
        if (!c->ok && !why)
            fail_msg("row %zu: VR %s should reject %s", i, c->vr, c->json);
        json_decref(v);
    }
}

static void test_vr_names(void **state)
{
    (void)state;
    assert_true(ahl_rules_is_vr("PN"));
    assert_true(ahl_rules_is_vr("UV"));
    assert_false(ahl_rules_is_vr("pn"));
    assert_false(ahl_rules_is_vr("XX"));
    assert_false(ahl_rules_is_vr(""));
    assert_false(ahl_rules_is_vr(NULL));
}

static void test_generated(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "SchemaVersion", "DatastoreID",      "ImageSetID",
        "PixelData",     "ImageFrames",      "Checksum",
        "Width",         "Height",           "MinPixelValue",
        "MaxPixelValue", "FrameSizeInBytes", "StoredTransferSyntaxUID",
        "ChecksumType",  "BulkData"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(ahl_rules_is_generated(yes[i]));
    assert_false(ahl_rules_is_generated("PatientName"));
    assert_false(ahl_rules_is_generated("DICOM"));
    assert_false(ahl_rules_is_generated(NULL));
}

/* ---- set / remove rules ---------------------------------------------------------------------- */

enum { SET, REMOVE };
enum { F_FORCE = 1, F_AWS = 2, F_PRIMARY = 4 };

#define PAT AHL_LEVEL_PATIENT, "Patient.DICOM"
#define STU AHL_LEVEL_STUDY, "Study.DICOM"
#define SER AHL_LEVEL_SERIES, "Study.Series['1.2.3'].DICOM"
#define INS AHL_LEVEL_INSTANCE, "Study.Series['1.2.3'].Instances['1.2.3.4'].DICOM"

struct rule_case {
    int op;
    enum ahl_level level;
    const char *path;
    const char *key;
    const char *value;   /* JSON, for SET */
    const char *vrs;     /* JSON object or NULL */
    const char *current; /* JSON or NULL */
    int flags;
    const char *reject; /* NULL: accepted; else a phrase the message must contain */
};

static const struct rule_case rule_cases[] = {
    /* plain edits at every level */
    {SET, PAT, "PatientName", "\"DOE^JANE\"", NULL, NULL, 0, NULL},
    {SET, PAT, "PatientBirthDate", "\"19700101\"", NULL, NULL, 0, NULL},
    {SET, PAT, "PatientBirthDate", "null", NULL, NULL, 0, NULL},
    {SET, STU, "StudyDescription", "\"CHEST\"", NULL, NULL, 0, NULL},
    {SET, STU, "AccessionNumber", "\"A123\"", NULL, NULL, 0, NULL},
    {SET, SER, "SeriesNumber", "\"2 \"", NULL, NULL, 0, NULL},
    {SET, SER, "Modality", "\"MR\"", NULL, NULL, 0, NULL},
    {SET, INS, "InstanceNumber", "\"11\"", NULL, NULL, 0, NULL},
    {SET, INS, "Rows", "512", NULL, NULL, 0, NULL},
    {REMOVE, STU, "StudyDescription", NULL, NULL, NULL, 0, NULL},
    {REMOVE, PAT, "PatientSex", NULL, NULL, NULL, 0, NULL},
    /* VR mismatches name the VR, and force lets them through */
    {SET, SER, "SeriesNumber", "\"two\"", NULL, NULL, 0, "VR IS expects an integer string"},
    {SET, SER, "SeriesNumber", "\"two\"", NULL, NULL, F_FORCE, NULL},
    {SET, PAT, "PatientBirthDate", "\"1970-01-01\"", NULL, NULL, 0, "VR DA expects a date"},
    {SET, INS, "Rows", "70000", NULL, NULL, 0, "VR US expects an integer 0..65535"},
    {SET, INS, "Rows", "\"512\"", NULL, NULL, 0, "VR US expects"},
    {SET, SER, "Modality", "\"mr\"", NULL, NULL, 0, "VR CS expects"},
    {SET, PAT, "PatientName", "\"A^B^C^D^E^F\"", NULL, NULL, 0, "VR PN expects"},
    {SET, PAT, "PatientName", "true", NULL, NULL, F_FORCE, "boolean"},
    {SET, PAT, "PatientName", "{\"Alphabetic\":\"X\"}", NULL, NULL, F_FORCE, "object"},
    /* US or SS: either range fits, DICOMVRs can choose, a contradicting DICOMVRs is refused */
    {SET, INS, "SmallestImagePixelValue", "-5", NULL, NULL, 0, NULL},
    {SET, INS, "SmallestImagePixelValue", "60000", NULL, NULL, 0, NULL},
    {SET, INS, "SmallestImagePixelValue", "-5", "{\"SmallestImagePixelValue\":\"US\"}", NULL, 0,
     "VR US expects"},
    {SET, INS, "SmallestImagePixelValue", "-5", "{\"SmallestImagePixelValue\":\"SS\"}", NULL, 0,
     NULL},
    {SET, INS, "InstanceNumber", "\"1\"", "{\"InstanceNumber\":\"LO\"}", NULL, 0,
     "DICOMVRs gives LO but the dictionary says IS"},
    {SET, INS, "InstanceNumber", "\"1\"", "{\"InstanceNumber\":\"XX\"}", NULL, F_FORCE,
     "not a DICOM VR"},
    /* identity attributes */
    {SET, STU, "StudyInstanceUID", "\"1.2.9\"", NULL, "\"1.2.8\"", 0,
     "changing StudyInstanceUID needs force"},
    {SET, STU, "StudyInstanceUID", "\"1.2.8\"", NULL, "\"1.2.8\"", 0, NULL},
    {SET, STU, "StudyInstanceUID", "\"1.2.9\"", NULL, "\"1.2.8\"", F_FORCE, NULL},
    {SET, STU, "StudyInstanceUID", "\"1.2.09\"", NULL, "\"1.2.8\"", F_FORCE, "VR UI expects"},
    {SET, STU, "StudyInstanceUID", "null", NULL, "\"1.2.8\"", F_FORCE, "VR UI expects"},
    {SET, SER, "SeriesInstanceUID", "\"1.2.4\"", NULL, "\"1.2.3\"", 0, "needs force"},
    {SET, SER, "SeriesInstanceUID", "\"1.2.3\"", NULL, "\"1.2.3\"", 0, NULL},
    {SET, INS, "SOPInstanceUID", "\"1.2.3.5\"", NULL, "\"1.2.3.4\"", 0, "needs force"},
    {SET, INS, "SOPInstanceUID", "\"1.2.3.5\"", NULL, "\"1.2.3.4\"", F_FORCE, NULL},
    {SET, INS, "SOPInstanceUID", "\"1.2.3.5\"", NULL, NULL, 0, "needs force"},
    {SET, STU, "StudyID", "\"40934\"", NULL, "\"1\"", 0, "changing StudyID needs force"},
    {SET, STU, "StudyID", "\"1\"", NULL, "\"1\"", 0, NULL},
    {SET, STU, "StudyID", "\"1 \"", NULL, "\"1\"", 0, NULL}, /* padding restates */
    {SET, STU, "StudyID", "1", NULL, "\"1\"", 0, "needs force"},
    {SET, STU, "StudyID", "\"not checked when forced\\\\x\"", NULL, "\"1\"", F_FORCE, NULL},
    {REMOVE, STU, "StudyInstanceUID", NULL, NULL, NULL, F_FORCE, "can never be removed"},
    {REMOVE, SER, "SeriesInstanceUID", NULL, NULL, NULL, F_FORCE, "can never be removed"},
    {REMOVE, INS, "SOPInstanceUID", NULL, NULL, NULL, F_FORCE, "can never be removed"},
    {REMOVE, STU, "StudyID", NULL, NULL, NULL, 0, "removing StudyID needs force"},
    {REMOVE, STU, "StudyID", NULL, NULL, NULL, F_FORCE, NULL},
    /* generated keys: never */
    {SET, INS, "PixelData", "null", NULL, NULL, F_FORCE, "can never be updated"},
    {SET, INS, "StoredTransferSyntaxUID", "\"1.2.840.10008.1.2.1\"", NULL, NULL, F_FORCE,
     "generated by the service"},
    {SET, INS, "ImageFrames", "[]", NULL, NULL, F_FORCE, "generated by the service"},
    {SET, INS, "BulkData", "{}", NULL, NULL, F_FORCE, "generated by the service"},
    {REMOVE, INS, "BulkData", NULL, NULL, NULL, F_FORCE, "can never be removed"},
    {SET, PAT, "SchemaVersion", "\"1.1\"", NULL, NULL, F_FORCE, "generated"},
    {REMOVE, INS, "ChecksumType", NULL, NULL, NULL, F_FORCE, "can never be removed"},
    {REMOVE, INS, "PixelData", NULL, NULL, NULL, F_FORCE, "can never be removed"},
    /* unknown keys */
    {SET, PAT, "PatientNme", "\"X\"", NULL, NULL, F_FORCE, "unknown attribute"},
    {SET, INS, "0019abcd", "\"X\"", NULL, NULL, F_FORCE, "unknown attribute"},
    {SET, INS, "0019ABC", "\"X\"", NULL, NULL, F_FORCE, "unknown attribute"},
    {REMOVE, STU, "Foo", NULL, NULL, NULL, 0, "unknown attribute"},
    {SET, PAT, "00100010", "\"X\"", NULL, NULL, F_FORCE, "by its keyword PatientName"},
    {SET, INS, "PrivateCreator", "\"X\"", NULL, NULL, F_FORCE, "range of tags"},
    {SET, INS, "00190000", "1", NULL, NULL, F_FORCE, "group lengths"},
    {SET, INS, "FileMetaInformationGroupLength", "1", NULL, NULL, F_FORCE, "group lengths"},
    {SET, INS, "Item", "null", NULL, NULL, F_FORCE, "not attributes"},
    /* unknown public tags: force, VR from DICOMVRs */
    {SET, INS, "00231234", "\"X\"", "{\"00231234\":\"LO\"}", NULL, 0, "private"}, /* odd */
    {SET, INS, "00221234", "\"X\"", "{\"00221234\":\"LO\"}", NULL, 0, "not a valid attribute"},
    {SET, INS, "00221234", "\"X\"", "{\"00221234\":\"LO\"}", NULL, F_FORCE, NULL},
    {SET, INS, "00221234", "\"X\"", NULL, NULL, F_FORCE, NULL},
    {SET, STU, "00221234", "\"X\"", NULL, NULL, F_FORCE, "belongs to the Instance level"},
    /* private tags: force at instance level, never elsewhere */
    {SET, INS, "001910F9", "\"97\"", "{\"001910F9\":\"DS\"}", NULL, 0,
     "private attributes can only be updated with force"},
    {SET, INS, "001910F9", "\"97\"", "{\"001910F9\":\"DS\"}", NULL, F_FORCE, NULL},
    {SET, INS, "001910F9", "\"abc\"", "{\"001910F9\":\"DS\"}", NULL, F_FORCE, NULL},
    {SET, INS, "00091001", "\"GE_GENESIS_DD\"", NULL, NULL, F_FORCE, NULL},
    {SET, INS, "00190010", "\"GEMS_ACQU_01\"", NULL, NULL, F_FORCE, NULL}, /* creator */
    {REMOVE, INS, "001910F9", NULL, NULL, NULL, 0, "can only be removed with force"},
    {REMOVE, INS, "001910F9", NULL, NULL, NULL, F_FORCE, NULL},
    {SET, PAT, "00091001", "\"X\"", NULL, NULL, F_FORCE, "belongs to the Instance level"},
    {SET, SER, "00091001", "\"X\"", NULL, NULL, F_FORCE, "not the Series level"},
    {REMOVE, STU, "00091001", NULL, NULL, NULL, F_FORCE, "belongs to the Instance level"},
    {SET, INS, "00011001", "\"X\"", NULL, NULL, F_FORCE, NULL}, /* reserved odd group: unknown */
    /* wrong level: never, even forced */
    {SET, STU, "PatientName", "\"X\"", NULL, NULL, F_FORCE,
     "belongs to the Patient level, not the Study level"},
    {SET, PAT, "StudyDate", "\"20240101\"", NULL, NULL, 0, "belongs to the Study level"},
    {SET, INS, "Modality", "\"CT\"", NULL, NULL, 0, "belongs to the Series level"},
    {SET, SER, "InstanceNumber", "\"1\"", NULL, NULL, 0, "belongs to the Instance level"},
    {REMOVE, SER, "PatientID", NULL, NULL, NULL, F_FORCE, "belongs to the Patient level"},
    /* file meta group */
    {SET, INS, "TransferSyntaxUID", "\"1.2.840.10008.1.2\"", NULL, NULL, 0,
     "file meta information (group 0002) can only be updated with force"},
    {SET, INS, "TransferSyntaxUID", "\"1.2.840.10008.1.2\"", NULL, NULL, F_FORCE, NULL},
    {REMOVE, INS, "SourceApplicationEntityTitle", NULL, NULL, NULL, 0, "group 0002"},
    /* sequences */
    {SET, STU, "ProcedureCodeSequence", "[{\"CodeValue\":\"1\"}]", NULL, NULL, 0,
     "sequence (SQ) attributes can only be updated with force"},
    {SET, STU, "ProcedureCodeSequence", "[{\"CodeValue\":\"1\"}]", NULL, NULL, F_FORCE, NULL},
    {SET, STU, "ProcedureCodeSequence", "[]", NULL, NULL, 0, "only be updated with force"},
    {SET, STU, "ProcedureCodeSequence", "null", NULL, NULL, 0, "can only be updated with force"},
    {SET, STU, "ProcedureCodeSequence", "\"x\"", NULL, NULL, 0, "VR SQ expects"},
    {SET, STU, "ProcedureCodeSequence", "[{\"a\":1}, 2]", NULL, NULL, F_FORCE,
     "ProcedureCodeSequence[1]: a sequence item must be a JSON object"},
    {SET, STU, "ProcedureCodeSequence", "[{\"X\":[{\"Y\":[1,{}]}]}]", NULL, NULL, F_FORCE,
     "mixes items and values"},
    {SET, STU, "ProcedureCodeSequence", "[{\"X\":{\"Y\":1}}]", NULL, NULL, F_FORCE,
     "not a DICOM value"},
    {SET, STU, "StudyDescription", "[{\"CodeValue\":\"1\"}]", NULL, NULL, 0,
     "sequence (SQ) attributes"},
    {REMOVE, STU, "ProcedureCodeSequence", NULL, NULL, NULL, 0, "can only be removed with force"},
    {REMOVE, STU, "ProcedureCodeSequence", NULL, NULL, NULL, F_FORCE, NULL},
    /* multi-valued */
    {SET, SER, "SoftwareVersions", "[\"3.1\"]", NULL, NULL, 0, NULL},
    {SET, SER, "SoftwareVersions", "\"3.1\"", NULL, NULL, 0, NULL},
    {SET, SER, "SoftwareVersions", "[\"3.1\",\"4\"]", NULL, NULL, 0,
     "multi-valued attributes can only be updated with force"},
    {SET, SER, "SoftwareVersions", "[\"3.1\",\"4\"]", NULL, NULL, F_FORCE, NULL},
    {SET, SER, "SoftwareVersions", "\"3.1\\\\4\"", NULL, NULL, 0, "backslash separates"},
    {SET, SER, "SoftwareVersions", "\"3.1\\\\4\"", NULL, NULL, F_FORCE, NULL},
    {SET, SER, "SoftwareVersions", "[[\"x\"]]", NULL, NULL, F_FORCE, "[0]: not a DICOM value"},
    {SET, INS, "ImageType", "[\"original\"]", NULL, NULL, 0, "VR CS expects"},
    {SET, STU, "StudyDescription", "[\"CHEST\"]", NULL, NULL, 0, "VM is 1"},
    {SET, STU, "StudyDescription", "[]", NULL, NULL, 0, NULL},
    {SET, STU, "StudyDescription", "\"a\\\\b\"", NULL, NULL, 0, "backslash"},
    {SET, INS, "ImageComments", "\"a\\\\b is fine in LT\"", NULL, NULL, 0, NULL},
    /* primary image sets under --aws-primary-rules */
    {SET, PAT, "PatientName", "\"X\"", NULL, NULL, F_AWS | F_PRIMARY,
     "Patient-level attributes cannot be updated on a primary image set"},
    {SET, SER, "SeriesDescription", "\"X\"", NULL, NULL, F_AWS | F_PRIMARY,
     "Series-level attributes cannot be updated"},
    {REMOVE, SER, "SeriesDescription", NULL, NULL, NULL, F_AWS | F_PRIMARY, "cannot be removed"},
    {SET, STU, "StudyDescription", "\"X\"", NULL, NULL, F_AWS | F_PRIMARY, NULL},
    {SET, INS, "InstanceNumber", "\"3\"", NULL, NULL, F_AWS | F_PRIMARY, NULL},
    {SET, STU, "StudyInstanceUID", "\"1.2.9\"", NULL, "\"1.2.8\"", F_FORCE | F_AWS | F_PRIMARY,
     "force does not apply to a primary image set"},
    {SET, INS, "001910F9", "\"1\"", NULL, NULL, F_FORCE | F_AWS | F_PRIMARY,
     "force does not apply"},
    {SET, STU, "StudyInstanceUID", "\"1.2.9\"", NULL, "\"1.2.8\"", F_FORCE | F_AWS, NULL},
    {SET, PAT, "PatientName", "\"X\"", NULL, NULL, F_PRIMARY, NULL}, /* default: any level */
    {SET, STU, "StudyInstanceUID", "\"1.2.9\"", NULL, "\"1.2.8\"", F_FORCE | F_PRIMARY, NULL},
};

static json_t *load(const char *s)
{
    if (!s)
        return NULL;
    json_error_t jerr;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("bad test JSON %s: %s", s, jerr.text);
    return v;
}

static void test_rule_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rule_cases / sizeof rule_cases[0]; i++) {
        const struct rule_case *c = &rule_cases[i];
        struct ahl_rules_opts opts = {
            .force = c->flags & F_FORCE,
            .aws_primary_rules = c->flags & F_AWS,
            .is_primary = c->flags & F_PRIMARY,
        };
        struct ahl_err err;
        ahl_err_clear(&err);
        int rc;
        if (c->op == SET) {
            json_t *v = load(c->value), *vrs = load(c->vrs), *cur = load(c->current);
            rc = ahl_rules_check_set(c->level, c->path, c->key, v, vrs, cur, &opts, &err);
            json_decref(v);
            json_decref(vrs);
            json_decref(cur);
        } else {
            rc = ahl_rules_check_remove(c->level, c->path, c->key, &opts, &err);
        }
        if (!c->reject) {
            if (rc != 0)
                fail_msg("row %zu (%s %s): expected acceptance, got %d: %s", i, c->path, c->key, rc,
                         err.msg);
            continue;
        }
        if (rc != AHL_EINVAL)
            fail_msg("row %zu (%s %s): expected rejection containing '%s', got %d", i, c->path,
                     c->key, c->reject, rc);
        assert_int_equal(err.code, AHL_EINVAL);
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%s.%s", c->path, c->key);
        if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
            fail_msg("row %zu: message does not start with the path %s: %s", i, prefix, err.msg);
        if (!strstr(err.msg, c->reject))
            fail_msg("row %zu: message lacks '%s': %s", i, c->reject, err.msg);
    }
}

/* The exact message format the header promises. */
static void test_message_shape(void **state)
{
    (void)state;
    struct ahl_err err;
    struct ahl_rules_opts opts = {0};
    json_t *v = json_string("x");
    assert_int_equal(ahl_rules_check_set(AHL_LEVEL_SERIES, "Study.Series['1.2.3'].DICOM",
                                         "SeriesNumber", v, NULL, NULL, &opts, &err),
                     AHL_EINVAL);
    assert_string_equal(err.msg, "Study.Series['1.2.3'].DICOM.SeriesNumber: VR IS expects an "
                                 "integer string (at most 12 characters, -2^31..2^31-1)");
    json_decref(v);
    /* NULL opts means no force; NULL err is accepted */
    v = json_string("1.2.5");
    json_t *cur = json_string("1.2.3");
    assert_int_equal(
        ahl_rules_check_set(AHL_LEVEL_SERIES, "p", "SeriesInstanceUID", v, NULL, cur, NULL, NULL),
        AHL_EINVAL);
    json_decref(v);
    json_decref(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vr_table),      cmocka_unit_test(test_vr_names),
        cmocka_unit_test(test_generated),     cmocka_unit_test(test_rule_table),
        cmocka_unit_test(test_message_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
