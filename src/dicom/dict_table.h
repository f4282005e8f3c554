/* Internal: the generated dictionary tables (dict_table.c, made by tools/gen_dict.py) that
 * dict.c searches. Nothing outside src/dicom/dict.c should include this; use dict.h. */
#ifndef AHL_DICOM_DICT_TABLE_H
#define AHL_DICOM_DICT_TABLE_H

#include "dicom/dict.h"

/* Exact entries ascending by tag. */
extern const struct ahl_dict_entry ahl__dict_exact[];
extern const unsigned ahl__dict_exact_n;
/* Masked entries (repeating groups, element ranges). */
extern const struct ahl_dict_entry ahl__dict_masked[];
extern const unsigned ahl__dict_masked_n;
/* Indexes into the concatenation exact ++ masked, ascending by keyword. */
extern const unsigned short ahl__dict_keyword_index[];
extern const unsigned ahl__dict_keyword_n;

#endif /* AHL_DICOM_DICT_TABLE_H */
