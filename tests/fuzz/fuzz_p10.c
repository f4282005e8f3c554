// module: dicom json
/* Fuzzes the Part-10 reader (ahl_p10_read_mem) and the DICOM JSON conversion of what it reads.
 * Nothing may crash, leak or read out of bounds; on success the dataset.h invariants are checked
 * (tags ascending and unique, VRs two upper-case letters, text values valid UTF-8, sequences
 * without value bytes, pixel data never inline), and on failure the error must say something.
 * Each input is read twice: with the default limits, and with small limits so that the inline,
 * depth, element and fragment caps are reached often. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "dicom/dicomjson.h"
#include "dicom/p10.h"
#include "json/json.h"

static void check_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            abort();
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                abort();
        i += len;
    }
}

static void check_dataset(const struct ahl_dcm_dataset *ds, unsigned depth)
{
    if (depth > 64)
        abort();
    for (size_t i = 0; i < ds->n; i++) {
        const struct ahl_dcm_elem *e = &ds->elems[i];
        if (i > 0 && ds->elems[i - 1].tag >= e->tag)
            abort();
        if (e->vr[0] < 'A' || e->vr[0] > 'Z' || e->vr[1] < 'A' || e->vr[1] > 'Z' || e->vr[2])
            abort();
        if (e->n_items > 0 && e->value != NULL)
            abort();
        if ((e->tag == AHL_TAG_PIXEL_DATA || e->tag == AHL_TAG_FLOAT_PIXEL_DATA ||
             e->tag == AHL_TAG_DOUBLE_FLOAT_PIXEL_DATA) &&
            e->value != NULL)
            abort();
        if (e->value != NULL && ahl_dcm_vr_is_text(e->vr))
            check_utf8(e->value, e->value_len);
        for (size_t k = 0; k < e->n_items; k++)
            check_dataset(&e->items[k], depth + 1);
    }
}

static void read_once(const uint8_t *data, size_t size, const struct ahl_p10_limits *lim)
{
    struct ahl_dcm_file *f = NULL;
    struct ahl_err err;

    ahl_err_clear(&err);
    if (ahl_p10_read_mem(data, size, lim, &f, &err) < 0) {
        if (f != NULL || err.msg[0] == '\0')
            abort();
        return;
    }
    check_dataset(&f->meta, 0);
    check_dataset(&f->ds, 0);
    for (size_t i = 0; !f->deflated && i < f->pixel.n_fragments; i++)
        if (f->pixel.fragments[i].offset + f->pixel.fragments[i].length > size)
            abort();
    json_t *j = NULL;
    if (ahl_dicomjson_from_dataset(&f->ds, NULL, &j, &err) == 0) {
        struct ahl_buf out;
        ahl_buf_init(&out, AHL_BUF_UNLIMITED);
        (void)ahl_json_write(j, &out);
        ahl_buf_release(&out);
        json_decref(j);
    }
    ahl_dcm_file_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ahl_p10_limits small = {.max_inline = 64,
                                   .max_inline_total = 4096,
                                   .max_depth = 4,
                                   .max_elements = 200,
                                   .max_fragments = 8};

    read_once(data, size, NULL);
    read_once(data, size, &small);
    return 0;
}
