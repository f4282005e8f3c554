// module: api
/* Fuzzes the DICOMweb search parser (ahl__qido_parse, src/api/dicomweb_qido.c): the input is a
 * request path, a newline, and a raw query string. Nothing may crash, leak or read out of
 * bounds, and the result must be what the store accepts: on success a level, at most
 * AHL_QIDO_MAX_FILTERS filters of keys that level takes, each with the strings its match needs,
 * a limit of 1..1000 and an offset of at most 9,000; on failure AHL_EINVAL, AHL_ENOTFOUND or
 * AHL_ENOMEM with a message. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "api/dicomweb_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = ahl__fuzz_text(data, size);
    if (!text)
        return 0;
    char *query = strchr(text, '\n');
    if (query)
        *query++ = '\0';
    struct ahl__qido_request *r = malloc(sizeof *r);
    struct ahl_err err = {0};
    int rc = r ? ahl__qido_parse(text, query, r, &err) : 0;
    if (r && rc < 0 &&
        ((rc != AHL_EINVAL && rc != AHL_ENOTFOUND && rc != AHL_ENOMEM) || !err.msg[0] ||
         strnlen(err.msg, sizeof err.msg) == sizeof err.msg))
        abort();
    if (r && rc == 0) {
        const struct ahl_qido_query *q = &r->q;
        if (q->level < AHL_QIDO_STUDY || q->level > AHL_QIDO_INSTANCE ||
            q->nf > AHL_QIDO_MAX_FILTERS || q->limit < 1 || q->limit > AHL_QIDO_MAX_LIMIT ||
            q->offset > AHL_QIDO_MAX_OFFSET || strlen(r->ds) != AHL_ID_LEN)
            abort();
        for (unsigned i = 0; i < q->nf; i++) {
            const struct ahl_qido_filter *f = &q->f[i];
            if (!(ahl_qido_key_levels(f->key) & (1u << q->level)))
                abort();
            if (f->match == AHL_QM_RANGE  ? !f->lo || !f->hi || strlen(f->lo) + strlen(f->hi) == 0
                : f->match == AHL_QM_LIST ? !f->list || f->nlist < 1 || f->nlist > AHL_QIDO_MAX_LIST
                                          : !f->value || !f->value[0])
                abort();
            for (unsigned k = 0; f->match == AHL_QM_LIST && k < f->nlist; k++)
                if (!f->list[k] || strlen(f->list[k]) > 1024)
                    abort();
        }
    }
    if (r)
        ahl__qido_request_release(r);
    free(r);
    free(text);
    return 0;
}
