/* GET /datastore/{datastoreId}/imageSet/{imageSetId}/diff?from=N&to=M: the changes between two
 * versions of an image set as JSON (ahl_meta_diff, docs/api.md#version-diff). Not an AWS
 * operation: it is not in the service model, and is authenticated like every operation. */
#include "api/ops_internal.h"

#include <string.h>

#include "json/json.h"
#include "meta/meta.h"
#include "base/banned.h"

#define PRE "/datastore/"
#define MID "/imageSet/"
#define SUF "/diff"

static bool is_id(const char *s, size_t n)
{
    if (n != AHL_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    return true;
}

/* Splits the path into the two ids; false when it is not a diff path. */
static bool split(const char *path, char *ds, char *set)
{
    size_t n = strlen(path), pre = strlen(PRE), mid = strlen(MID), suf = strlen(SUF);
    if (n != pre + AHL_ID_LEN + mid + AHL_ID_LEN + suf || strncmp(path, PRE, pre) ||
        strncmp(path + pre + AHL_ID_LEN, MID, mid) || strcmp(path + n - suf, SUF) ||
        !is_id(path + pre, AHL_ID_LEN) || !is_id(path + pre + AHL_ID_LEN + mid, AHL_ID_LEN))
        return false;
    memcpy(ds, path + pre, AHL_ID_LEN);
    ds[AHL_ID_LEN] = '\0';
    memcpy(set, path + pre + AHL_ID_LEN + mid, AHL_ID_LEN);
    set[AHL_ID_LEN] = '\0';
    return true;
}

bool ahl__diff_path(const char *path)
{
    char ds[AHL_ID_LEN + 1], set[AHL_ID_LEN + 1];
    return split(path, ds, set);
}

int ahl__diff_target(const char *method, const char *path, const char *q, char *ds, char *set,
                     uint64_t v[2], struct ahl_err *err)
{
    static const char *const names[2] = {"from", "to"};
    v[0] = v[1] = 0;
    if (strcmp(method, "GET") != 0)
        return ahl_fail(err, AHL_EINVAL, "the version diff answers GET only");
    if (!split(path, ds, set))
        return ahl_fail(err, AHL_ENOTFOUND, "no such resource");
    if (q && *q == '?')
        q++;
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        int which = -1;
        for (int i = 0; i < 2; i++)
            if (kn == strlen(names[i]) && !strncmp(q, names[i], kn))
                which = i;
        if (which < 0 || !eq)
            return ahl_fail(err, AHL_EINVAL, "unknown query parameter '%.*s' (from and to only)",
                            (int)(kn > 64 ? 64 : kn), q);
        char tmp[24];
        size_t vn = (size_t)(q + n - eq - 1);
        if (v[which] || vn == 0 || vn >= sizeof tmp)
            return ahl_fail(err, AHL_EINVAL, "%s must be given once, as 1, 2, ...", names[which]);
        memcpy(tmp, eq + 1, vn);
        tmp[vn] = '\0';
        int rc = ahl__api_parse_version(tmp, names[which], &v[which], err);
        if (rc < 0)
            return rc;
        q += n + (q[n] == '&');
    }
    if (!v[0] || !v[1])
        return ahl_fail(err, AHL_EINVAL, "from and to (version numbers) are required");
    return 0;
}

int ahl__diff_serve(struct ahl_api_service *svc, const char *method, const char *path,
                    const char *q, struct ahl_api_resp *resp, struct ahl_err *err)
{
    char ds[AHL_ID_LEN + 1], set[AHL_ID_LEN + 1];
    uint64_t v[2];
    int rc = ahl__diff_target(method, path, q, ds, set, v, err);
    if (rc < 0)
        return rc;
    json_t *d = NULL;
    if ((rc = ahl_meta_diff(svc->meta, ds, set, v[0], v[1], &d, err)) < 0)
        return rc;
    rc = ahl_json_write(d, &resp->raw);
    json_decref(d);
    if (rc < 0)
        return ahl_fail(err, rc, "writing the diff");
    resp->content_type = "application/json";
    return 0;
}
