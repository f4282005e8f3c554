/* Unit tests for the level table (src/dicom/levels.c): known placements from HealthImaging's
 * metadata-normalization examples and PS3.3, and the shape of the table itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dicom/dataset.h"
#include "dicom/levels.h"
#include "dicom/levels_internal.h"

struct placement {
    uint16_t group, element;
    enum ahl_level level;
    const char *keyword; /* for failure messages */
};

static const struct placement placements[] = {
    /* Patient: Patient module, Issuer of Patient ID and Patient Group macros, Clinical Trial
     * Subject */
    {0x0010, 0x0010, AHL_LEVEL_PATIENT, "PatientName"},
    {0x0010, 0x0020, AHL_LEVEL_PATIENT, "PatientID"},
    {0x0010, 0x0021, AHL_LEVEL_PATIENT, "IssuerOfPatientID"},
    {0x0010, 0x0024, AHL_LEVEL_PATIENT, "IssuerOfPatientIDQualifiersSequence"},
    {0x0010, 0x0030, AHL_LEVEL_PATIENT, "PatientBirthDate"},
    {0x0010, 0x0040, AHL_LEVEL_PATIENT, "PatientSex"},
    {0x0010, 0x1002, AHL_LEVEL_PATIENT, "OtherPatientIDsSequence"},
    {0x0010, 0x2160, AHL_LEVEL_PATIENT, "EthnicGroup"},
    {0x0010, 0x4000, AHL_LEVEL_PATIENT, "PatientComments"},
    {0x0012, 0x0062, AHL_LEVEL_PATIENT, "PatientIdentityRemoved"},
    {0x0012, 0x0063, AHL_LEVEL_PATIENT, "DeidentificationMethod"},
    {0x0012, 0x0064, AHL_LEVEL_PATIENT, "DeidentificationMethodCodeSequence"},
    {0x0012, 0x0010, AHL_LEVEL_PATIENT, "ClinicalTrialSponsorName"},
    {0x0012, 0x0040, AHL_LEVEL_PATIENT, "ClinicalTrialSubjectID"},
    {0x0012, 0x0042, AHL_LEVEL_PATIENT, "ClinicalTrialSubjectReadingID"},
    {0x0010, 0x0026, AHL_LEVEL_PATIENT, "SourcePatientGroupIdentificationSequence"},
    {0x0008, 0x1120, AHL_LEVEL_PATIENT, "ReferencedPatientSequence"},
    /* Study: General Study, Patient Study, Clinical Trial Study */
    {0x0020, 0x000D, AHL_LEVEL_STUDY, "StudyInstanceUID"},
    {0x0008, 0x0020, AHL_LEVEL_STUDY, "StudyDate"},
    {0x0008, 0x0030, AHL_LEVEL_STUDY, "StudyTime"},
    {0x0008, 0x0090, AHL_LEVEL_STUDY, "ReferringPhysicianName"},
    {0x0020, 0x0010, AHL_LEVEL_STUDY, "StudyID"},
    {0x0008, 0x0050, AHL_LEVEL_STUDY, "AccessionNumber"},
    {0x0008, 0x0051, AHL_LEVEL_STUDY, "IssuerOfAccessionNumberSequence"},
    {0x0008, 0x1030, AHL_LEVEL_STUDY, "StudyDescription"},
    {0x0008, 0x1048, AHL_LEVEL_STUDY, "PhysiciansOfRecord"},
    {0x0008, 0x1032, AHL_LEVEL_STUDY, "ProcedureCodeSequence"},
    {0x0008, 0x1080, AHL_LEVEL_STUDY, "AdmittingDiagnosesDescription"},
    {0x0010, 0x1010, AHL_LEVEL_STUDY, "PatientAge"},
    {0x0010, 0x1020, AHL_LEVEL_STUDY, "PatientSize"},
    {0x0010, 0x1030, AHL_LEVEL_STUDY, "PatientWeight"},
    {0x0010, 0x1022, AHL_LEVEL_STUDY, "PatientBodyMassIndex"},
    {0x0010, 0x2000, AHL_LEVEL_STUDY, "MedicalAlerts"},
    {0x0010, 0x2110, AHL_LEVEL_STUDY, "Allergies"},
    {0x0010, 0x21C0, AHL_LEVEL_STUDY, "PregnancyStatus"},
    {0x0038, 0x0010, AHL_LEVEL_STUDY, "AdmissionID"},
    {0x0010, 0x2180, AHL_LEVEL_STUDY, "Occupation"},
    {0x0010, 0x21B0, AHL_LEVEL_STUDY, "AdditionalPatientHistory"},
    {0x0012, 0x0050, AHL_LEVEL_STUDY, "ClinicalTrialTimePointID"},
    {0x0012, 0x0083, AHL_LEVEL_STUDY, "ConsentForClinicalTrialUseSequence"},
    /* Series: General Series, Clinical Trial Series, General Equipment, Frame of Reference */
    {0x0008, 0x0060, AHL_LEVEL_SERIES, "Modality"},
    {0x0020, 0x000E, AHL_LEVEL_SERIES, "SeriesInstanceUID"},
    {0x0020, 0x0011, AHL_LEVEL_SERIES, "SeriesNumber"},
    {0x0020, 0x0060, AHL_LEVEL_SERIES, "Laterality"},
    {0x0008, 0x0021, AHL_LEVEL_SERIES, "SeriesDate"},
    {0x0008, 0x0031, AHL_LEVEL_SERIES, "SeriesTime"},
    {0x0008, 0x1050, AHL_LEVEL_SERIES, "PerformingPhysicianName"},
    {0x0018, 0x1030, AHL_LEVEL_SERIES, "ProtocolName"},
    {0x0008, 0x103E, AHL_LEVEL_SERIES, "SeriesDescription"},
    {0x0008, 0x103F, AHL_LEVEL_SERIES, "SeriesDescriptionCodeSequence"},
    {0x0008, 0x1070, AHL_LEVEL_SERIES, "OperatorsName"},
    {0x0018, 0x0015, AHL_LEVEL_SERIES, "BodyPartExamined"},
    {0x0018, 0x5100, AHL_LEVEL_SERIES, "PatientPosition"},
    {0x0028, 0x0108, AHL_LEVEL_SERIES, "SmallestPixelValueInSeries"},
    {0x0028, 0x0109, AHL_LEVEL_SERIES, "LargestPixelValueInSeries"},
    {0x0040, 0x0275, AHL_LEVEL_SERIES, "RequestAttributesSequence"},
    {0x0008, 0x0070, AHL_LEVEL_SERIES, "Manufacturer"},
    {0x0008, 0x0080, AHL_LEVEL_SERIES, "InstitutionName"},
    {0x0008, 0x0081, AHL_LEVEL_SERIES, "InstitutionAddress"},
    {0x0008, 0x1010, AHL_LEVEL_SERIES, "StationName"},
    {0x0008, 0x1090, AHL_LEVEL_SERIES, "ManufacturerModelName"},
    {0x0018, 0x1000, AHL_LEVEL_SERIES, "DeviceSerialNumber"},
    {0x0018, 0x1020, AHL_LEVEL_SERIES, "SoftwareVersions"},
    {0x0028, 0x0120, AHL_LEVEL_SERIES, "PixelPaddingValue"},
    {0x0020, 0x0052, AHL_LEVEL_SERIES, "FrameOfReferenceUID"},
    {0x0020, 0x1040, AHL_LEVEL_SERIES, "PositionReferenceIndicator"},
    {0x0012, 0x0071, AHL_LEVEL_SERIES, "ClinicalTrialSeriesID"},
    /* Instance: file meta, SOP Common, image modules, private and unknown tags, and attributes
     * that live only inside the modules' sequences */
    {0x0002, 0x0000, AHL_LEVEL_INSTANCE, "FileMetaInformationGroupLength"},
    {0x0002, 0x0010, AHL_LEVEL_INSTANCE, "TransferSyntaxUID"},
    {0x0008, 0x0016, AHL_LEVEL_INSTANCE, "SOPClassUID"},
    {0x0008, 0x0018, AHL_LEVEL_INSTANCE, "SOPInstanceUID"},
    {0x0008, 0x0008, AHL_LEVEL_INSTANCE, "ImageType"},
    {0x0008, 0x0005, AHL_LEVEL_INSTANCE, "SpecificCharacterSet"},
    {0x0008, 0x0022, AHL_LEVEL_INSTANCE, "AcquisitionDate"},
    {0x0008, 0x2112, AHL_LEVEL_INSTANCE, "SourceImageSequence"},
    {0x0020, 0x0013, AHL_LEVEL_INSTANCE, "InstanceNumber"},
    {0x0020, 0x0012, AHL_LEVEL_INSTANCE, "AcquisitionNumber"},
    {0x0020, 0x0032, AHL_LEVEL_INSTANCE, "ImagePositionPatient"},
    {0x0028, 0x0010, AHL_LEVEL_INSTANCE, "Rows"},
    {0x0028, 0x0100, AHL_LEVEL_INSTANCE, "BitsAllocated"},
    {0x0028, 0x1050, AHL_LEVEL_INSTANCE, "WindowCenter"},
    {0x0028, 0x1052, AHL_LEVEL_INSTANCE, "RescaleIntercept"},
    {0x7FE0, 0x0010, AHL_LEVEL_INSTANCE, "PixelData"},
    {0x0019, 0x10F9, AHL_LEVEL_INSTANCE, "private 001910F9"},
    {0x0009, 0x0010, AHL_LEVEL_INSTANCE, "private creator 00090010"},
    {0x0010, 0x1000, AHL_LEVEL_INSTANCE, "OtherPatientIDs (retired)"},
    {0x0012, 0x0084, AHL_LEVEL_INSTANCE, "DistributionType (inside ConsentForClinicalTrialUse)"},
    {0x0040, 0x0009, AHL_LEVEL_INSTANCE, "ScheduledProcedureStepID (inside RequestAttributes)"},
    {0x0008, 0x0100, AHL_LEVEL_INSTANCE, "CodeValue"},
    {0x0000, 0x0000, AHL_LEVEL_INSTANCE, "CommandGroupLength"},
    {0xFFFF, 0xFFFF, AHL_LEVEL_INSTANCE, "highest tag"},
};

static void test_placements(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof placements / sizeof placements[0]; i++) {
        const struct placement *p = &placements[i];
        enum ahl_level got = ahl_level_of_tag(AHL_DCM_TAG(p->group, p->element));
        if (got != p->level)
            fail_msg("%s (%04X,%04X): expected %s, got %s", p->keyword, p->group, p->element,
                     ahl_level_name(p->level), ahl_level_name(got));
        const char *module = ahl__level_module_of_tag(AHL_DCM_TAG(p->group, p->element));
        if (p->level == AHL_LEVEL_INSTANCE)
            assert_null(module);
        else
            assert_non_null(module);
    }
}

struct module_case {
    uint16_t group, element;
    const char *module_prefix;
};

static const struct module_case module_cases[] = {
    {0x0010, 0x0021, "Issuer of Patient ID Macro"},
    {0x0010, 0x0027, "Patient Group Macro"},
    {0x0012, 0x0020, "Clinical Trial Subject"},
    {0x0010, 0x1030, "Patient Study"},
    {0x0012, 0x0053, "Clinical Trial Study"},
    {0x0012, 0x0060, "Clinical Trial Series"},
    {0x0018, 0x1000, "General Equipment"},
    {0x0020, 0x1040, "Frame of Reference"},
    {0x300A, 0x0700, "General Series"},
};

static void test_modules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof module_cases / sizeof module_cases[0]; i++) {
        const char *m =
            ahl__level_module_of_tag(AHL_DCM_TAG(module_cases[i].group, module_cases[i].element));
        assert_non_null(m);
        assert_int_equal(
            strncmp(m, module_cases[i].module_prefix, strlen(module_cases[i].module_prefix)), 0);
    }
}

static void test_table_has_no_duplicates(void **state)
{
    (void)state;
    uint32_t tags[512];
    size_t n = ahl__level_rows_sorted(tags, 512);
    assert_true(n > 140 && n <= 512);
    for (size_t i = 1; i < n; i++)
        if (tags[i - 1] >= tags[i])
            fail_msg("tag %08X listed twice", tags[i]);
    /* No group 0002 (file meta) and no private (odd) group at a higher level. */
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(AHL_DCM_GROUP(tags[i]), 0x0002);
        assert_int_equal(AHL_DCM_GROUP(tags[i]) & 1, 0);
    }
}

static void test_level_names(void **state)
{
    (void)state;
    assert_string_equal(ahl_level_name(AHL_LEVEL_PATIENT), "Patient");
    assert_string_equal(ahl_level_name(AHL_LEVEL_STUDY), "Study");
    assert_string_equal(ahl_level_name(AHL_LEVEL_SERIES), "Series");
    assert_string_equal(ahl_level_name(AHL_LEVEL_INSTANCE), "Instance");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placements),
        cmocka_unit_test(test_modules),
        cmocka_unit_test(test_table_has_no_duplicates),
        cmocka_unit_test(test_level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
