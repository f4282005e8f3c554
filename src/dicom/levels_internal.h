/* Accessors of the level table for its unit tests (not a public header: src/dicom and
 * tests/unit/test_dicom_levels.c only). */
#ifndef AHL_DICOM_LEVELS_INTERNAL_H
#define AHL_DICOM_LEVELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The module a row of the table came from (NULL for tags placed at the Instance level). */
const char *ahl__level_module_of_tag(uint32_t tag);
/* Writes up to max tags of the table's rows into tags, in tag order; returns how many rows exist. */
size_t ahl__level_rows_sorted(uint32_t *tags, size_t max);

#endif /* AHL_DICOM_LEVELS_INTERNAL_H */
