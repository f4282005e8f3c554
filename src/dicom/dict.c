/* Lookups in the generated DICOM data dictionary (dict_table.c): by tag with repeating-group
 * masks and private-creator ranges, by keyword through a sorted index, and VM queries. The
 * ranges DCMTK writes as PRIVATE/GENERIC rows are resolved here by rule, since a single mask
 * cannot express "odd groups only". */
#include "dicom/dict.h"

#include <string.h>

#include "dicom/dict_table.h"

#include "base/banned.h"

/* Entries resolved by rule carry mask 0 (no single mask expresses their range).
 * dicom.dic's "(0009-o-FFFF,0010-u-00FF) LO PrivateCreator" row. */
static const struct ahl_dict_entry private_creator = {0x00090010, 0x00000000,       "LO", "",
                                                      "1",        "PrivateCreator", false};
/* "(0009-o-FFFF,0000) UL PrivateGroupLength". */
static const struct ahl_dict_entry private_group_length = {
    0x00090000, 0x00000000, "UL", "", "1", "PrivateGroupLength", false};
/* "(0000-u-FFFF,0000) UL GenericGroupLength": group lengths the standard does not list. */
static const struct ahl_dict_entry generic_group_length = {
    0x00000000, 0x00000000, "UL", "", "1", "GenericGroupLength", true};

const struct ahl_dict_entry *ahl_dict_by_tag(uint32_t tag)
{
    uint16_t group = (uint16_t)(tag >> 16), elem = (uint16_t)(tag & 0xFFFF);
    unsigned lo = 0, hi = ahl__dict_exact_n;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        uint32_t t = ahl__dict_exact[mid].tag;
        if (t == tag)
            return &ahl__dict_exact[mid];
        if (t < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Odd groups are private (groups 0001-0007 and FFFF are not allowed at all): only the
     * private creators and the group length are known there. Repeating groups such as 60xx
     * are even, so an odd group never matches a masked standard entry. */
    if (group & 1) {
        if (group < 0x0009 || group == 0xFFFF)
            return NULL;
        if (elem == 0x0000)
            return &private_group_length;
        if (elem >= 0x0010 && elem <= 0x00FF)
            return &private_creator;
        return NULL;
    }
    for (unsigned i = 0; i < ahl__dict_masked_n; i++) {
        if ((tag & ahl__dict_masked[i].mask) == ahl__dict_masked[i].tag)
            return &ahl__dict_masked[i];
    }
    if (elem == 0x0000)
        return &generic_group_length;
    return NULL;
}

static const struct ahl_dict_entry *entry_at(unsigned idx)
{
    if (idx < ahl__dict_exact_n)
        return &ahl__dict_exact[idx];
    return &ahl__dict_masked[idx - ahl__dict_exact_n];
}

const struct ahl_dict_entry *ahl_dict_by_keyword(const char *kw)
{
    unsigned lo = 0, hi = ahl__dict_keyword_n;

    if (kw == NULL)
        return NULL;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct ahl_dict_entry *e = entry_at(ahl__dict_keyword_index[mid]);
        int c = strcmp(e->keyword, kw);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (strcmp(kw, private_creator.keyword) == 0)
        return &private_creator;
    return NULL;
}

bool ahl_dict_vm_multi(const struct ahl_dict_entry *e)
{
    return e != NULL && strcmp(e->vm, "1") != 0;
}

unsigned ahl_dict_size(void)
{
    return ahl__dict_exact_n + ahl__dict_masked_n;
}
