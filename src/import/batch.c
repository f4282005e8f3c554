/* Batches of an import: instances gathered per grouping key and committed together. */
#include "import/import_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

/* ---- batches ------------------------------------------------------------------------------ */

struct pend {
    struct ahl_import_item *it;
    void *tag;
};

struct group {
    char key[AHL_GROUP_KEY_LEN + 1];
    struct pend *v;
    size_t n, cap;
};

struct ahl_import_batch {
    struct ahl_importer *im;
    ahl_import_done_fn done;
    void *ctx;
    pthread_mutex_t mu;
    struct group g[IMPORT_MAX_GROUPS];
    size_t ng;
    size_t total; /* items pending in all groups */
};

int ahl_import_batch_new(struct ahl_importer *im, ahl_import_done_fn done, void *ctx,
                         struct ahl_import_batch **out)
{
    struct ahl_import_batch *b = calloc(1, sizeof *b);
    if (!b)
        return AHL_ENOMEM;
    b->im = im;
    b->done = done;
    b->ctx = ctx;
    pthread_mutex_init(&b->mu, NULL);
    *out = b;
    return 0;
}

static int pend_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct pend *)a)->tag;
    uintptr_t y = (uintptr_t)((const struct pend *)b)->tag;
    return x < y ? -1 : x > y;
}

/* Commits a detached group and reports each item. Items are committed in ascending tag order
 * whatever order the threads added them in, so that when several objects carry the same SOP
 * instance the one with the greatest tag (the last in input order, when tags are input indexes)
 * wins, and importing the same input twice gives the same content (no new version). */
static void group_commit(struct ahl_import_batch *b, struct group *g)
{
    struct ahl_import_item **items = malloc((g->n ? g->n : 1) * sizeof *items);
    qsort(g->v, g->n, sizeof g->v[0], pend_cmp);
    if (items) {
        for (size_t i = 0; i < g->n; i++)
            items[i] = g->v[i].it;
        ahl__import_commit(b->im, items, g->n);
    } else {
        struct ahl_err e;
        int rc = ahl_fail(&e, AHL_ENOMEM, "out of memory");
        for (size_t i = 0; i < g->n; i++)
            ahl__import_res_fail(&g->v[i].it->res, rc, &e, NULL);
    }
    for (size_t i = 0; i < g->n; i++) {
        if (b->done)
            b->done(b->ctx, g->v[i].tag, &g->v[i].it->res);
        ahl_import_item_free(g->v[i].it);
    }
    free(items);
    free(g->v);
    memset(g, 0, sizeof *g);
}

void ahl_import_batch_add(struct ahl_import_batch *b, struct ahl_import_item *it, void *tag)
{
    struct group ready[IMPORT_MAX_GROUPS + 1];
    size_t nready = 0;
    pthread_mutex_lock(&b->mu);
    struct group *g = NULL;
    for (size_t i = 0; i < b->ng && !g; i++)
        if (!strcmp(b->g[i].key, it->key))
            g = &b->g[i];
    if (!g && b->ng == IMPORT_MAX_GROUPS) {
        /* Too many series at once: commit everything pending (bounded memory). */
        memcpy(ready, b->g, b->ng * sizeof b->g[0]);
        nready = b->ng;
        b->ng = 0;
        b->total = 0;
    }
    if (!g) {
        g = &b->g[b->ng++];
        memset(g, 0, sizeof *g);
        memcpy(g->key, it->key, sizeof g->key);
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        struct pend *v = realloc(g->v, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&b->mu);
            struct group one = {.n = 1};
            struct pend p = {it, tag};
            memcpy(one.key, it->key, sizeof one.key);
            one.v = malloc(sizeof p);
            if (one.v) {
                one.v[0] = p;
                group_commit(b, &one);
            } else {
                struct ahl_err e;
                ahl__import_res_fail(&it->res, ahl_fail(&e, AHL_ENOMEM, "out of memory"), &e, NULL);
                if (b->done)
                    b->done(b->ctx, tag, &it->res);
                ahl_import_item_free(it);
            }
            goto commit_ready;
        }
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n].it = it;
    g->v[g->n].tag = tag;
    g->n++;
    b->total++;
    if (g->n < b->im->batch_max && b->total > IMPORT_MAX_PENDING) {
        /* Many series pending at once: commit the largest to bound memory. */
        for (size_t i = 0; i < b->ng; i++)
            if (b->g[i].n > g->n)
                g = &b->g[i];
    } else if (g->n < b->im->batch_max) {
        g = NULL;
    }
    if (g) {
        b->total -= g->n;
        ready[nready++] = *g;
        *g = b->g[--b->ng];
    }
    pthread_mutex_unlock(&b->mu);
commit_ready:
    for (size_t i = 0; i < nready; i++)
        group_commit(b, &ready[i]);
}

void ahl_import_batch_flush(struct ahl_import_batch *b)
{
    struct group ready[IMPORT_MAX_GROUPS];
    pthread_mutex_lock(&b->mu);
    size_t n = b->ng;
    memcpy(ready, b->g, n * sizeof b->g[0]);
    b->ng = 0;
    b->total = 0;
    pthread_mutex_unlock(&b->mu);
    for (size_t i = 0; i < n; i++)
        group_commit(b, &ready[i]);
}

void ahl_import_batch_free(struct ahl_import_batch *b)
{
    if (!b)
        return;
    ahl_import_batch_flush(b);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
