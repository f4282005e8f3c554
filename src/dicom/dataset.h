/* The in-memory form of a DICOM dataset as the Part-10 reader produces it, and the contract between
 * the reader (p10.c, which fills it) and its consumers (the HealthImaging normalizer, the import
 * job, the frame decoders).
 *
 * Invariants the reader guarantees:
 * - Elements of a dataset are in ascending tag order, each tag at most once.
 * - Binary values (US SS UL SL FL FD UV SV AT OB OW OF OD OL OV and UN) are little-endian whatever
 *   the file's transfer syntax was; text values (AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT)
 *   are UTF-8, converted from the Specific Character Set in force, with the file's padding kept.
 * - An element whose VR is SQ (or an UN of undefined length that holds a sequence) has items and
 *   no value bytes.
 * - Pixel data (7FE0,0010), (7FE0,0008) and (7FE0,0009) are never copied into memory: the element
 *   is present with value == NULL, and struct ahl_dcm_pixel says where the bytes are in the file.
 * - Any other value larger than the reader's inline limit is left in the file too: value == NULL,
 *   value_offset/length say where (the normalizer leaves such values out).
 *
 * Memory: everything hangs off one struct ahl_dcm_file and is freed by ahl_dcm_file_free().
 */
#ifndef AHL_DICOM_DATASET_H
#define AHL_DICOM_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AHL_DCM_TAG(group, element) (((uint32_t)(group) << 16) | (uint32_t)(element))
#define AHL_DCM_GROUP(tag) ((uint16_t)((tag) >> 16))
#define AHL_DCM_ELEMENT(tag) ((uint16_t)((tag)&0xFFFF))
#define AHL_DCM_UNDEFINED_LENGTH 0xFFFFFFFFu

#define AHL_TAG_PIXEL_DATA AHL_DCM_TAG(0x7FE0, 0x0010)
#define AHL_TAG_FLOAT_PIXEL_DATA AHL_DCM_TAG(0x7FE0, 0x0008)
#define AHL_TAG_DOUBLE_FLOAT_PIXEL_DATA AHL_DCM_TAG(0x7FE0, 0x0009)

struct ahl_dcm_dataset;

struct ahl_dcm_elem {
    uint32_t tag;
    char vr[3];             /* two upper-case letters and NUL, as in the file or the dictionary */
    uint32_t length;        /* the value length the file declared (AHL_DCM_UNDEFINED_LENGTH) */
    uint8_t *value;         /* value bytes (see invariants); NULL for sequences and left-out values */
    size_t value_len;       /* bytes in value (after character-set conversion for text) */
    uint64_t value_offset;  /* where the value starts in the (inflated) stream */
    struct ahl_dcm_dataset *items; /* sequence items, n_items of them */
    size_t n_items;
};

struct ahl_dcm_dataset {
    struct ahl_dcm_elem *elems;
    size_t n;
};

struct ahl_dcm_fragment {
    uint64_t offset; /* of the fragment's bytes (after its item header) in the file */
    uint32_t length;
};

/* Where the pixel data is. For native data: value_offset/value_length; for encapsulated data:
 * the fragments (the Basic Offset Table item excluded) and the table's entries, if any. */
struct ahl_dcm_pixel {
    bool present;
    bool encapsulated;
    uint32_t tag;           /* which of the three pixel data tags */
    char vr[3];             /* OB or OW (native data) */
    uint64_t value_offset;
    uint64_t value_length;
    struct ahl_dcm_fragment *fragments;
    size_t n_fragments;
    uint32_t *offset_table; /* Basic Offset Table entries (byte offsets of frames' first items) */
    size_t n_offsets;
    uint32_t *extended_offsets_lengths; /* unused unless the file has (7FE0,0001)/(7FE0,0002) */
};

struct ahl_dcm_file {
    struct ahl_dcm_dataset meta;    /* group 0002 (empty when the file had no meta) */
    struct ahl_dcm_dataset ds;      /* the dataset proper */
    char transfer_syntax[65];       /* as read from (0002,0010), or the syntax the reader inferred */
    bool has_preamble;              /* 128-byte preamble and "DICM" were present */
    bool deflated;                  /* offsets refer to the inflated stream, not the file */
    bool big_endian;                /* the file's dataset was explicit VR big endian */
    struct ahl_dcm_pixel pixel;
};

/* Frees everything the reader allocated for f, and f itself. Accepts NULL. */
void ahl_dcm_file_free(struct ahl_dcm_file *f);

/* The element with this tag in ds, or NULL. Binary search. */
const struct ahl_dcm_elem *ahl_dcm_find(const struct ahl_dcm_dataset *ds, uint32_t tag);

#endif /* AHL_DICOM_DATASET_H */
