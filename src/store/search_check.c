/* The refusals of a SearchImageSets query, the same for both database backends
 * (query_internal.h); each backend writes its own SQL for the queries it accepts. */
#include "store/query_internal.h"

#include "base/err.h"
#include "base/banned.h"

bool ahl__search_attr_is_ident(int a)
{
    return a >= AHL_SEARCH_PATIENT_ID && a <= AHL_SEARCH_SERIES_UID;
}

bool ahl__search_attr_is_range(int a)
{
    return a == AHL_SEARCH_CREATED_AT || a == AHL_SEARCH_UPDATED_AT ||
           a == AHL_SEARCH_STUDY_DATE_TIME;
}

int ahl__search_sort_attr(int sort)
{
    return sort == AHL_SEARCH_SORT_CREATED_AT        ? AHL_SEARCH_CREATED_AT
           : sort == AHL_SEARCH_SORT_STUDY_DATE_TIME ? AHL_SEARCH_STUDY_DATE_TIME
                                                     : AHL_SEARCH_UPDATED_AT;
}

int ahl__search_query_check(const struct ahl_search_query *q)
{
    if (q->nfilters > AHL_SEARCH_MAX_FILTERS || q->limit < 1 || q->limit > 1000 ||
        q->sort < AHL_SEARCH_SORT_UPDATED_AT || q->sort > AHL_SEARCH_SORT_STUDY_DATE_TIME)
        return AHL_EINVAL;
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        if (f->attr < 0 || f->attr >= AHL_SEARCH_ATTR_COUNT)
            return AHL_EINVAL;
        if (f->between && !ahl__search_attr_is_range(f->attr))
            return AHL_EINVAL;
        bool text = ahl__search_attr_is_ident(f->attr) || f->attr == AHL_SEARCH_STUDY_DATE_TIME;
        if (text && (!f->text[0] || (f->between && !f->text[1])))
            return AHL_EINVAL;
    }
    return 0;
}
