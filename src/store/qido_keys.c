/* The QIDO-RS search keys and the checks of a search's filters, shared by both database backends
 * (query_internal.h). */
#include "store/query_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/banned.h"

#define L_STUDY (1u << AHL_QIDO_STUDY)
#define L_SERIES (1u << AHL_QIDO_SERIES)
#define L_INSTANCE (1u << AHL_QIDO_INSTANCE)

const struct ahl__qido_key ahl__qido_keys[AHL_QK_COUNT] = {
    [AHL_QK_STUDY_UID] = {K_UID, NULL, L_STUDY | L_SERIES | L_INSTANCE, true, 1},
    [AHL_QK_PATIENT_NAME] = {K_PN, "s.pn_norm", L_STUDY, true, 4},
    [AHL_QK_PATIENT_ID] = {K_TEXT, "s.patient_id", L_STUDY, true, 2},
    [AHL_QK_BIRTH_DATE] = {K_DATE, "s.patient_birth_date", L_STUDY, true, 6},
    [AHL_QK_BIRTH_TIME] = {K_TIME, "s.birth_tm", L_STUDY, false, 0},
    [AHL_QK_STUDY_DATE] = {K_DATE, "s.study_date", L_STUDY, true, 6},
    [AHL_QK_STUDY_TIME] = {K_TIME, "s.study_tm", L_STUDY, false, 0},
    [AHL_QK_ACCESSION] = {K_TEXT, "s.accession_number", L_STUDY, true, 2},
    [AHL_QK_MODALITIES] = {K_MODS, NULL, L_STUDY, true, 8},
    [AHL_QK_REFERRING] = {K_PN, "s.ref_norm", L_STUDY, true, 5},
    [AHL_QK_STUDY_DESC] = {K_TEXT, "s.study_description", L_STUDY, true, 5},
    [AHL_QK_STUDY_ID] = {K_TEXT, "s.study_id", L_STUDY, true, 3},
    [AHL_QK_SERIES_UID] = {K_UID, "e.series_uid", L_SERIES | L_INSTANCE, true, 0},
    [AHL_QK_MODALITY] = {K_CS, "e.modality", L_SERIES, true, 7},
    [AHL_QK_SERIES_NUMBER] = {K_INT, "e.series_number", L_SERIES, true, 5},
    [AHL_QK_SERIES_DESC] = {K_TEXT, "e.series_description", L_SERIES, true, 5},
    [AHL_QK_SERIES_DATE] = {K_DATE, "e.series_date", L_SERIES, true, 6},
    [AHL_QK_SERIES_TIME] = {K_TIME, "e.series_tm", L_SERIES, false, 0},
    [AHL_QK_BODY_PART] = {K_CS, "e.body_part", L_SERIES, true, 7},
    [AHL_QK_SOP_UID] = {K_UID, "i.sop_uid", L_INSTANCE, false, 0},
    [AHL_QK_SOP_CLASS] = {K_UID, "i.sop_class", L_INSTANCE, false, 0},
    [AHL_QK_INSTANCE_NUMBER] = {K_INT, "i.instance_number", L_INSTANCE, false, 0},
    [AHL_QK_WARNING_REASON] = {K_INT, "i.warning", L_INSTANCE, false, 0},
};

unsigned ahl_qido_key_levels(int key)
{
    return key >= 0 && key < AHL_QK_COUNT ? ahl__qido_keys[key].levels : 0;
}

const char *ahl__qido_key_col(int key, int level)
{
    if (key == AHL_QK_STUDY_UID)
        return level == AHL_QIDO_STUDY ? "s.study_uid" : "e.study_uid";
    return ahl__qido_keys[key].col;
}

void ahl__qido_tm_key(const char *tm, char out[13])
{
    char key[AHL_STUDY_DT_KEY_LEN + 1];
    out[0] = '\0';
    if (tm && *tm && ahl_store_study_dt_key("19700101", tm, key) == 0)
        memcpy(out, key + 8, 13);
}

bool ahl__qido_parse_int(const char *s, long long *out)
{
    char *end;
    if (!s || !*s)
        return false;
    long long v = strtoll(s, &end, 10);
    while (*end == ' ')
        end++;
    if (*end || v < INT32_MIN || v > (long long)UINT32_MAX)
        return false;
    *out = v;
    return true;
}

static bool is_date(const char *s)
{
    return strlen(s) == 8 && strspn(s, "0123456789") == 8;
}

int ahl__qido_check_filter(const struct ahl_qido_query *q, const struct ahl_qido_filter *f)
{
    if (f->key < 0 || f->key >= AHL_QK_COUNT || !(ahl__qido_keys[f->key].levels & (1u << q->level)))
        return AHL_EINVAL;
    int type = ahl__qido_keys[f->key].type;
    long long v;
    switch (f->match) {
    case AHL_QM_SINGLE:
        if (!f->value || (type == K_INT && !ahl__qido_parse_int(f->value, &v)) ||
            (type == K_DATE && !is_date(f->value)))
            return AHL_EINVAL;
        if (type == K_TIME) {
            char k[13];
            ahl__qido_tm_key(f->value, k);
            if (!k[0])
                return AHL_EINVAL;
        }
        return 0;
    case AHL_QM_WILD:
        return f->value && (type == K_PN || type == K_TEXT || type == K_CS) ? 0 : AHL_EINVAL;
    case AHL_QM_RANGE:
        if ((type != K_DATE && type != K_TIME) || !f->lo || !f->hi || (!*f->lo && !*f->hi))
            return AHL_EINVAL;
        for (int i = 0; i < 2; i++) {
            const char *b = i ? f->hi : f->lo;
            char k[13];
            ahl__qido_tm_key(b, k);
            if (*b && (type == K_DATE ? !is_date(b) : !k[0]))
                return AHL_EINVAL;
        }
        return 0;
    case AHL_QM_LIST:
        if ((type != K_UID && type != K_CS && type != K_MODS) || !f->list || f->nlist < 1 ||
            f->nlist > AHL_QIDO_MAX_LIST)
            return AHL_EINVAL;
        for (unsigned i = 0; i < f->nlist; i++)
            if (!f->list[i])
                return AHL_EINVAL;
        return 0;
    default:
        return AHL_EINVAL;
    }
}

bool ahl__qido_can_drive(const struct ahl_qido_query *q, const struct ahl_qido_filter *f)
{
    if (f->key == AHL_QK_STUDY_UID)
        return f->match == AHL_QM_SINGLE || f->match == AHL_QM_LIST;
    if (!ahl__qido_keys[f->key].indexed)
        return false;
    if (ahl__qido_keys[f->key].type == K_PN && q->fuzzy)
        return false;
    if (f->match == AHL_QM_WILD)
        return strcspn(f->value, "*?") > 0;
    if (ahl__qido_keys[f->key].type == K_MODS)
        return f->match == AHL_QM_SINGLE;
    if (f->match == AHL_QM_RANGE)
        return ahl__qido_keys[f->key].type == K_DATE;
    return true;
}

char *ahl__qido_upper_of(const char *v)
{
    char *u = strdup(v);
    for (char *p = u; p && *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return u;
}

char *ahl__qido_prefix_of(const char *v, bool upper)
{
    size_t n = strcspn(v, "*?");
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = upper && v[i] >= 'a' && v[i] <= 'z' ? (char)(v[i] - 'a' + 'A') : v[i];
    p[n] = '\0';
    return p;
}
