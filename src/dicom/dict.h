/* The DICOM data dictionary (PS3.6 as shipped with DCMTK's dicom.dic), generated into
 * dict_table.c by tools/gen_dict.py. Read-only process-wide data.
 *
 * VRs are two upper-case letters. Where the dictionary allows several, vr holds the first and
 * vr_alt the rest as written by the standard ("US" + "SS" for "US or SS"); DCMTK's lower-case
 * pseudo-VRs map to: xs -> US/SS, ox -> OB/OW, px -> OB/OW, lt -> OW/US/SS (LUT data),
 * up -> UL, na -> "" (items and delimiters, which have no VR).
 *
 * Repeating groups (50xx, 60xx, 7Fxx) and ranges are entries with a mask: a tag t matches an
 * entry e when (t & e->mask) == e->tag. Exact entries have mask 0xFFFFFFFF and win over masked
 * ones. Private-creator ranges (gggg,0010-00FF for odd gggg) resolve to the generic
 * "PrivateCreator" entry with VR LO, private group lengths (odd gggg,0000) to "PrivateGroupLength"
 * and other unlisted group lengths (gggg,0000) to "GenericGroupLength" (retired), both UL; these
 * rule-based entries have mask 0.
 */
#ifndef AHL_DICOM_DICT_H
#define AHL_DICOM_DICT_H

#include <stdbool.h>
#include <stdint.h>

struct ahl_dict_entry {
    uint32_t tag;
    uint32_t mask;
    char vr[3];
    char vr_alt[6]; /* further allowed VRs, two letters each, no separator; "" if none */
    const char *vm;      /* "1", "1-n", "2-2n", "3", ... */
    const char *keyword; /* "PatientName"; never NULL */
    bool retired;
};

/* The entry for tag, exact first, then masked; NULL when the tag is unknown (private elements
 * other than private creators are always unknown). */
const struct ahl_dict_entry *ahl_dict_by_tag(uint32_t tag);
/* The entry whose keyword is kw (exact, case-sensitive), or NULL. Masked entries are included
 * under their keyword with the masked tag (e.g. "OverlayData" -> 6000,3000 mask FF00FFFF). */
const struct ahl_dict_entry *ahl_dict_by_keyword(const char *kw);
/* true when the dictionary VM allows more than one value (anything but "1"). */
bool ahl_dict_vm_multi(const struct ahl_dict_entry *e);
/* Number of entries (for tests). */
unsigned ahl_dict_size(void);

#endif /* AHL_DICOM_DICT_H */
