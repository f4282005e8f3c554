/* Where HealthImaging places each DICOM attribute: Patient, Study, Series or Instance level.
 * The table is data (levels.c), built from the standard's module definitions: Patient module,
 * Issuer of Patient ID and Patient Group macros and Clinical Trial Subject -> Patient; General
 * Study, Patient Study and Clinical Trial Study -> Study; General Series, Clinical Trial Series,
 * General Equipment and Frame of Reference -> Series; everything else (file meta, SOP Common,
 * image pixel, private tags, ...) -> Instance: the placement HealthImaging documents for its
 * metadata normalization (docs/import.md). */
#ifndef AHL_DICOM_LEVELS_H
#define AHL_DICOM_LEVELS_H

#include <stdint.h>

enum ahl_level {
    AHL_LEVEL_PATIENT,
    AHL_LEVEL_STUDY,
    AHL_LEVEL_SERIES,
    AHL_LEVEL_INSTANCE,
};

/* The level a top-level attribute with this tag belongs to. Never fails: unknown and private
 * tags are AHL_LEVEL_INSTANCE. */
enum ahl_level ahl_level_of_tag(uint32_t tag);
/* "Patient", "Study", "Series" or "Instance". */
const char *ahl_level_name(enum ahl_level level);

#endif /* AHL_DICOM_LEVELS_H */
