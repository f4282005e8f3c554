/* The level table: which top-level attributes HealthImaging lifts out of the instance to the
 * Patient, Study or Series level.
 *
 * The rows below are the top-level attributes of the PS3.3 modules that HealthImaging's metadata
 * normalization names (PS3.3 2022b, the edition whose dictionary HealthImaging keys by), written
 * module by module so each block can be read against its table in the standard. Attributes nested
 * inside a module's sequences are not rows: they travel inside their sequence. Retired attributes
 * are not part of the modules and stay at the instance. Anything without a row (file meta, SOP
 * Common, image modules, private tags, unknown tags) is Instance level.
 *
 * Lookups go through a tag-sorted index built once from the table, so the table itself can stay
 * in the standard's order.
 */
#include "dicom/levels.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include "dicom/dataset.h"
#include "dicom/levels_internal.h"
#include "base/banned.h"

struct ahl__level_row {
    uint32_t tag;
    enum ahl_level level;
    const char *module;
};

#define P(g, e, m)                                      \
    {                                                   \
        AHL_DCM_TAG(0x##g, 0x##e), AHL_LEVEL_PATIENT, m \
    }
#define S(g, e, m)                                    \
    {                                                 \
        AHL_DCM_TAG(0x##g, 0x##e), AHL_LEVEL_STUDY, m \
    }
#define R(g, e, m)                                     \
    {                                                  \
        AHL_DCM_TAG(0x##g, 0x##e), AHL_LEVEL_SERIES, m \
    }

static const char M_PATIENT[] = "Patient (C.7.1.1)";
static const char M_ISSUER[] = "Issuer of Patient ID Macro (10.18)";
static const char M_GROUP[] = "Patient Group Macro (10.37)";
static const char M_CT_SUBJECT[] = "Clinical Trial Subject (C.7.1.3)";
static const char M_GEN_STUDY[] = "General Study (C.7.2.1)";
static const char M_PAT_STUDY[] = "Patient Study (C.7.2.2)";
static const char M_CT_STUDY[] = "Clinical Trial Study (C.7.2.3)";
static const char M_GEN_SERIES[] = "General Series (C.7.3.1)";
static const char M_CT_SERIES[] = "Clinical Trial Series (C.7.3.2)";
static const char M_FOR[] = "Frame of Reference (C.7.4.1)";
static const char M_EQUIPMENT[] = "General Equipment (C.7.5.1)";

static const struct ahl__level_row ahl__level_rows[] = {
    /* Patient module */
    P(0010, 0010, M_PATIENT), /* PatientName */
    P(0010, 0020, M_PATIENT), /* PatientID */
    P(0010, 0022, M_PATIENT), /* TypeOfPatientID */
    P(0010, 0030, M_PATIENT), /* PatientBirthDate */
    P(0010, 0033, M_PATIENT), /* PatientBirthDateInAlternativeCalendar */
    P(0010, 0034, M_PATIENT), /* PatientDeathDateInAlternativeCalendar */
    P(0010, 0035, M_PATIENT), /* PatientAlternativeCalendar */
    P(0010, 0040, M_PATIENT), /* PatientSex */
    P(0010, 1100, M_PATIENT), /* ReferencedPatientPhotoSequence */
    P(0010, 0200, M_PATIENT), /* QualityControlSubject */
    P(0010, 0201, M_PATIENT), /* QualityControlSubjectTypeCodeSequence */
    P(0008, 1120, M_PATIENT), /* ReferencedPatientSequence */
    P(0010, 0032, M_PATIENT), /* PatientBirthTime */
    P(0010, 1002, M_PATIENT), /* OtherPatientIDsSequence */
    P(0010, 1001, M_PATIENT), /* OtherPatientNames */
    P(0010, 2160, M_PATIENT), /* EthnicGroup */
    P(0010, 4000, M_PATIENT), /* PatientComments */
    P(0010, 2201, M_PATIENT), /* PatientSpeciesDescription */
    P(0010, 2202, M_PATIENT), /* PatientSpeciesCodeSequence */
    P(0010, 2292, M_PATIENT), /* PatientBreedDescription */
    P(0010, 2293, M_PATIENT), /* PatientBreedCodeSequence */
    P(0010, 2294, M_PATIENT), /* BreedRegistrationSequence */
    P(0010, 0212, M_PATIENT), /* StrainDescription */
    P(0010, 0213, M_PATIENT), /* StrainNomenclature */
    P(0010, 0216, M_PATIENT), /* StrainStockSequence */
    P(0010, 0218, M_PATIENT), /* StrainAdditionalInformation */
    P(0010, 0219, M_PATIENT), /* StrainCodeSequence */
    P(0010, 0221, M_PATIENT), /* GeneticModificationsSequence */
    P(0010, 2297, M_PATIENT), /* ResponsiblePerson */
    P(0010, 2298, M_PATIENT), /* ResponsiblePersonRole */
    P(0010, 2299, M_PATIENT), /* ResponsibleOrganization */
    P(0012, 0062, M_PATIENT), /* PatientIdentityRemoved */
    P(0012, 0063, M_PATIENT), /* DeidentificationMethod */
    P(0012, 0064, M_PATIENT), /* DeidentificationMethodCodeSequence */

    /* Issuer of Patient ID macro, included by the Patient module */
    P(0010, 0021, M_ISSUER), /* IssuerOfPatientID */
    P(0010, 0024, M_ISSUER), /* IssuerOfPatientIDQualifiersSequence */

    /* Patient Group macro, included by the Patient module */
    P(0010, 0026, M_GROUP), /* SourcePatientGroupIdentificationSequence */
    P(0010, 0027, M_GROUP), /* GroupOfPatientsIdentificationSequence */

    /* Clinical Trial Subject module */
    P(0012, 0010, M_CT_SUBJECT), /* ClinicalTrialSponsorName */
    P(0012, 0020, M_CT_SUBJECT), /* ClinicalTrialProtocolID */
    P(0012, 0021, M_CT_SUBJECT), /* ClinicalTrialProtocolName */
    P(0012, 0030, M_CT_SUBJECT), /* ClinicalTrialSiteID */
    P(0012, 0031, M_CT_SUBJECT), /* ClinicalTrialSiteName */
    P(0012, 0040, M_CT_SUBJECT), /* ClinicalTrialSubjectID */
    P(0012, 0042, M_CT_SUBJECT), /* ClinicalTrialSubjectReadingID */
    P(0012, 0081, M_CT_SUBJECT), /* ClinicalTrialProtocolEthicsCommitteeName */
    P(0012, 0082, M_CT_SUBJECT), /* ClinicalTrialProtocolEthicsCommitteeApprovalNumber */
    P(0012, 0086, M_CT_SUBJECT), /* EthicsCommitteeApprovalEffectivenessStartDate */
    P(0012, 0087, M_CT_SUBJECT), /* EthicsCommitteeApprovalEffectivenessEndDate */

    /* General Study module */
    S(0020, 000D, M_GEN_STUDY), /* StudyInstanceUID */
    S(0008, 0020, M_GEN_STUDY), /* StudyDate */
    S(0008, 0030, M_GEN_STUDY), /* StudyTime */
    S(0008, 0090, M_GEN_STUDY), /* ReferringPhysicianName */
    S(0008, 0096, M_GEN_STUDY), /* ReferringPhysicianIdentificationSequence */
    S(0008, 009C, M_GEN_STUDY), /* ConsultingPhysicianName */
    S(0008, 009D, M_GEN_STUDY), /* ConsultingPhysicianIdentificationSequence */
    S(0020, 0010, M_GEN_STUDY), /* StudyID */
    S(0008, 0050, M_GEN_STUDY), /* AccessionNumber */
    S(0008, 0051, M_GEN_STUDY), /* IssuerOfAccessionNumberSequence */
    S(0008, 1030, M_GEN_STUDY), /* StudyDescription */
    S(0008, 1048, M_GEN_STUDY), /* PhysiciansOfRecord */
    S(0008, 1049, M_GEN_STUDY), /* PhysiciansOfRecordIdentificationSequence */
    S(0008, 1060, M_GEN_STUDY), /* NameOfPhysiciansReadingStudy */
    S(0008, 1062, M_GEN_STUDY), /* PhysiciansReadingStudyIdentificationSequence */
    S(0032, 1034, M_GEN_STUDY), /* RequestingServiceCodeSequence */
    S(0008, 1110, M_GEN_STUDY), /* ReferencedStudySequence */
    S(0008, 1032, M_GEN_STUDY), /* ProcedureCodeSequence */
    S(0040, 1012, M_GEN_STUDY), /* ReasonForPerformedProcedureCodeSequence */

    /* Patient Study module */
    S(0008, 1080, M_PAT_STUDY), /* AdmittingDiagnosesDescription */
    S(0008, 1084, M_PAT_STUDY), /* AdmittingDiagnosesCodeSequence */
    S(0010, 1010, M_PAT_STUDY), /* PatientAge */
    S(0010, 1020, M_PAT_STUDY), /* PatientSize */
    S(0010, 1030, M_PAT_STUDY), /* PatientWeight */
    S(0010, 1022, M_PAT_STUDY), /* PatientBodyMassIndex */
    S(0010, 1023, M_PAT_STUDY), /* MeasuredAPDimension */
    S(0010, 1024, M_PAT_STUDY), /* MeasuredLateralDimension */
    S(0010, 1021, M_PAT_STUDY), /* PatientSizeCodeSequence */
    S(0010, 2000, M_PAT_STUDY), /* MedicalAlerts */
    S(0010, 2110, M_PAT_STUDY), /* Allergies */
    S(0010, 21A0, M_PAT_STUDY), /* SmokingStatus */
    S(0010, 21C0, M_PAT_STUDY), /* PregnancyStatus */
    S(0010, 21D0, M_PAT_STUDY), /* LastMenstrualDate */
    S(0038, 0500, M_PAT_STUDY), /* PatientState */
    S(0010, 2203, M_PAT_STUDY), /* PatientSexNeutered */
    S(0010, 2180, M_PAT_STUDY), /* Occupation */
    S(0010, 21B0, M_PAT_STUDY), /* AdditionalPatientHistory */
    S(0038, 0010, M_PAT_STUDY), /* AdmissionID */
    S(0038, 0014, M_PAT_STUDY), /* IssuerOfAdmissionIDSequence */
    S(0038, 0060, M_PAT_STUDY), /* ServiceEpisodeID */
    S(0038, 0064, M_PAT_STUDY), /* IssuerOfServiceEpisodeIDSequence */
    S(0038, 0062, M_PAT_STUDY), /* ServiceEpisodeDescription */
    S(0032, 1066, M_PAT_STUDY), /* ReasonForVisit */
    S(0032, 1067, M_PAT_STUDY), /* ReasonForVisitCodeSequence */
    S(0038, 0502, M_PAT_STUDY), /* PatientClinicalTrialParticipationSequence */

    /* Clinical Trial Study module */
    S(0012, 0050, M_CT_STUDY), /* ClinicalTrialTimePointID */
    S(0012, 0051, M_CT_STUDY), /* ClinicalTrialTimePointDescription */
    S(0012, 0052, M_CT_STUDY), /* LongitudinalTemporalOffsetFromEvent */
    S(0012, 0053, M_CT_STUDY), /* LongitudinalTemporalEventType */
    S(0012, 0083, M_CT_STUDY), /* ConsentForClinicalTrialUseSequence */

    /* General Series module */
    R(0008, 0060, M_GEN_SERIES), /* Modality */
    R(0020, 000E, M_GEN_SERIES), /* SeriesInstanceUID */
    R(0020, 0011, M_GEN_SERIES), /* SeriesNumber */
    R(0020, 0060, M_GEN_SERIES), /* Laterality */
    R(0008, 0021, M_GEN_SERIES), /* SeriesDate */
    R(0008, 0031, M_GEN_SERIES), /* SeriesTime */
    R(0008, 1050, M_GEN_SERIES), /* PerformingPhysicianName */
    R(0008, 1052, M_GEN_SERIES), /* PerformingPhysicianIdentificationSequence */
    R(0018, 1030, M_GEN_SERIES), /* ProtocolName */
    R(0008, 103E, M_GEN_SERIES), /* SeriesDescription */
    R(0008, 103F, M_GEN_SERIES), /* SeriesDescriptionCodeSequence */
    R(0008, 1070, M_GEN_SERIES), /* OperatorsName */
    R(0008, 1072, M_GEN_SERIES), /* OperatorIdentificationSequence */
    R(0008, 1111, M_GEN_SERIES), /* ReferencedPerformedProcedureStepSequence */
    R(0008, 1250, M_GEN_SERIES), /* RelatedSeriesSequence */
    R(0018, 0015, M_GEN_SERIES), /* BodyPartExamined */
    R(0018, 5100, M_GEN_SERIES), /* PatientPosition */
    R(0028, 0108, M_GEN_SERIES), /* SmallestPixelValueInSeries */
    R(0028, 0109, M_GEN_SERIES), /* LargestPixelValueInSeries */
    R(0040, 0275, M_GEN_SERIES), /* RequestAttributesSequence */
    R(0040, 0253, M_GEN_SERIES), /* PerformedProcedureStepID */
    R(0040, 0244, M_GEN_SERIES), /* PerformedProcedureStepStartDate */
    R(0040, 0245, M_GEN_SERIES), /* PerformedProcedureStepStartTime */
    R(0040, 0250, M_GEN_SERIES), /* PerformedProcedureStepEndDate */
    R(0040, 0251, M_GEN_SERIES), /* PerformedProcedureStepEndTime */
    R(0040, 0254, M_GEN_SERIES), /* PerformedProcedureStepDescription */
    R(0040, 0260, M_GEN_SERIES), /* PerformedProtocolCodeSequence */
    R(0040, 0280, M_GEN_SERIES), /* CommentsOnThePerformedProcedureStep */
    R(0010, 2210, M_GEN_SERIES), /* AnatomicalOrientationType */
    R(300A, 0700, M_GEN_SERIES), /* TreatmentSessionUID */

    /* Clinical Trial Series module */
    R(0012, 0060, M_CT_SERIES), /* ClinicalTrialCoordinatingCenterName */
    R(0012, 0071, M_CT_SERIES), /* ClinicalTrialSeriesID */
    R(0012, 0072, M_CT_SERIES), /* ClinicalTrialSeriesDescription */

    /* General Equipment module */
    R(0008, 0070, M_EQUIPMENT), /* Manufacturer */
    R(0008, 0080, M_EQUIPMENT), /* InstitutionName */
    R(0008, 0081, M_EQUIPMENT), /* InstitutionAddress */
    R(0008, 1010, M_EQUIPMENT), /* StationName */
    R(0008, 1040, M_EQUIPMENT), /* InstitutionalDepartmentName */
    R(0008, 1041, M_EQUIPMENT), /* InstitutionalDepartmentTypeCodeSequence */
    R(0008, 1090, M_EQUIPMENT), /* ManufacturerModelName */
    R(0018, 100B, M_EQUIPMENT), /* ManufacturerDeviceClassUID */
    R(0018, 1000, M_EQUIPMENT), /* DeviceSerialNumber */
    R(0018, 1002, M_EQUIPMENT), /* DeviceUID */
    R(0018, 1008, M_EQUIPMENT), /* GantryID */
    R(0018, 100A, M_EQUIPMENT), /* UDISequence */
    R(0018, 1020, M_EQUIPMENT), /* SoftwareVersions */
    R(0018, 1050, M_EQUIPMENT), /* SpatialResolution */
    R(0018, 1200, M_EQUIPMENT), /* DateOfLastCalibration */
    R(0018, 1201, M_EQUIPMENT), /* TimeOfLastCalibration */
    R(0028, 0120, M_EQUIPMENT), /* PixelPaddingValue */

    /* Frame of Reference module */
    R(0020, 0052, M_FOR), /* FrameOfReferenceUID */
    R(0020, 1040, M_FOR), /* PositionReferenceIndicator */
};

#undef P
#undef S
#undef R

#define AHL__N_LEVEL_ROWS (sizeof ahl__level_rows / sizeof ahl__level_rows[0])

static const struct ahl__level_row *ahl__level_index[AHL__N_LEVEL_ROWS];
static pthread_once_t ahl__level_once = PTHREAD_ONCE_INIT;

static int ahl__row_cmp(const void *a, const void *b)
{
    uint32_t x = (*(const struct ahl__level_row *const *)a)->tag;
    uint32_t y = (*(const struct ahl__level_row *const *)b)->tag;
    return x < y ? -1 : x > y;
}

static void ahl__level_index_build(void)
{
    for (size_t i = 0; i < AHL__N_LEVEL_ROWS; i++)
        ahl__level_index[i] = &ahl__level_rows[i];
    qsort(ahl__level_index, AHL__N_LEVEL_ROWS, sizeof ahl__level_index[0], ahl__row_cmp);
}

static const struct ahl__level_row *ahl__level_row_of(uint32_t tag)
{
    pthread_once(&ahl__level_once, ahl__level_index_build);
    size_t lo = 0, hi = AHL__N_LEVEL_ROWS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t t = ahl__level_index[mid]->tag;
        if (t == tag)
            return ahl__level_index[mid];
        if (t < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

enum ahl_level ahl_level_of_tag(uint32_t tag)
{
    const struct ahl__level_row *row = ahl__level_row_of(tag);
    return row ? row->level : AHL_LEVEL_INSTANCE;
}

const char *ahl_level_name(enum ahl_level level)
{
    switch (level) {
    case AHL_LEVEL_PATIENT:
        return "Patient";
    case AHL_LEVEL_STUDY:
        return "Study";
    case AHL_LEVEL_SERIES:
        return "Series";
    case AHL_LEVEL_INSTANCE:
        return "Instance";
    }
    return "Instance";
}

/* For the unit tests (levels_internal.h): the module a row came from, and the rows in tag order
 * so a test can check there are no duplicates. */
const char *ahl__level_module_of_tag(uint32_t tag)
{
    const struct ahl__level_row *row = ahl__level_row_of(tag);
    return row ? row->module : NULL;
}

size_t ahl__level_rows_sorted(uint32_t *tags, size_t max)
{
    pthread_once(&ahl__level_once, ahl__level_index_build);
    size_t n = AHL__N_LEVEL_ROWS < max ? AHL__N_LEVEL_ROWS : max;
    for (size_t i = 0; i < n; i++)
        tags[i] = ahl__level_index[i]->tag;
    return AHL__N_LEVEL_ROWS;
}
