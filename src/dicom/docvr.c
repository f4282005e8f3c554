/* The keys and VRs of a metadata document's DICOM maps (docvr.h): one resolver for the DICOM JSON
 * and the Part-10 writers. */
#include "dicom/docvr.h"

#include <string.h>

#include "dicom/dataset.h"
#include "base/banned.h"

bool ahl_dicom_hex_key(const char *key, uint32_t *tag)
{
    uint32_t t = 0;
    for (int i = 0; i < 8; i++) {
        char c = key[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        t = (t << 4) | d;
    }
    if (key[8] != '\0')
        return false;
    *tag = t;
    return true;
}

static bool vr_is(const char *vr, const char *name)
{
    return vr[0] == name[0] && vr[1] == name[1];
}

static bool is_byte_vr(const char *vr)
{
    return vr[0] == 'O' || vr_is(vr, "UN");
}

static bool is_number_vr(const char *vr)
{
    static const char numbers[] = "USSSULSLUVSVFLFD";
    for (size_t i = 0; i + 1 < sizeof numbers; i += 2)
        if (vr_is(vr, numbers + i))
            return true;
    return false;
}

const json_t *ahl_dicom_first_value(const json_t *v)
{
    if (!json_is_array(v))
        return json_is_null(v) ? NULL : v;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_null(json_array_get(v, i)))
            return json_array_get(v, i);
    return NULL;
}

/* true when a number of v (a value or an array of them) is below lo or above hi. */
static bool any_outside(const json_t *v, double lo, double hi)
{
    if (json_is_number(v))
        return json_number_value(v) < lo || json_number_value(v) > hi;
    for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++)
        if (any_outside(json_array_get(v, i), lo, hi))
            return true;
    return false;
}

void ahl_dicom_value_vr(uint32_t tag, const char *given, const json_t *map, const json_t *value,
                        bool signed_pixels, char out[3])
{
    if (given && strlen(given) == 2) {
        memcpy(out, given, 3);
        return;
    }
    /* Private elements other than creators are never in the dictionary (dict.h). */
    const struct ahl_dict_entry *de =
        (AHL_DCM_GROUP(tag) & 1) && AHL_DCM_ELEMENT(tag) > 0xFF ? NULL : ahl_dict_by_tag(tag);
    if (!de || !de->vr[0]) {
        memcpy(out, "UN", 3);
        return;
    }
    memcpy(out, de->vr, 3);
    if (!de->vr_alt[0])
        return;
    char all[16];
    size_t n = strlen(de->vr) + strlen(de->vr_alt);
    memcpy(all, de->vr, 2);
    memcpy(all + 2, de->vr_alt, strlen(de->vr_alt) + 1);
    const json_t *s = ahl_dicom_first_value(value);
    bool has_ob = false, has_ow = false, has_us = false, has_ss = false;
    for (size_t i = 0; i + 1 < n; i += 2) {
        has_ob = has_ob || vr_is(all + i, "OB");
        has_ow = has_ow || vr_is(all + i, "OW");
        has_us = has_us || vr_is(all + i, "US");
        has_ss = has_ss || vr_is(all + i, "SS");
    }
    if (json_is_string(s) && has_ob && has_ow) {
        const json_t *bits = json_object_get(map, "WaveformBitsAllocated");
        memcpy(out, json_is_integer(bits) && json_integer_value(bits) <= 8 ? "OB" : "OW", 3);
        return;
    }
    if (json_is_number(s) && has_us && has_ss) {
        bool neg = any_outside(value, 0, 1e300);
        memcpy(out, neg || (signed_pixels && !any_outside(value, -32768, 32767)) ? "SS" : "US", 3);
        return;
    }
    for (size_t i = 0; i + 1 < n; i += 2) {
        const char *c = all + i;
        if ((json_is_string(s) && is_byte_vr(c)) || (json_is_object(s) && vr_is(c, "SQ")) ||
            (json_is_number(s) && is_number_vr(c))) {
            out[0] = c[0];
            out[1] = c[1];
            out[2] = '\0';
            return;
        }
    }
}
