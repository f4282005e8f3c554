/* Growable byte buffer; see buf.h for the invariants. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/banned.h"

static char ahl__buf_empty[1];

void ahl_buf_init(struct ahl_buf *b, size_t max)
{
    b->data = ahl__buf_empty;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int ahl_buf_reserve(struct ahl_buf *b, size_t n)
{
    if (n > b->max - b->len)
        return AHL_ETOOBIG;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    char *p = realloc(b->cap ? b->data : NULL, cap);
    if (!p)
        return AHL_ENOMEM;
    if (!b->cap)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int ahl_buf_add(struct ahl_buf *b, const void *p, size_t n)
{
    int rc = ahl_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ahl_buf_adds(struct ahl_buf *b, const char *s)
{
    return ahl_buf_add(b, s, strlen(s));
}

int ahl_buf_addc(struct ahl_buf *b, char c)
{
    return ahl_buf_add(b, &c, 1);
}

int ahl_buf_addf(struct ahl_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return AHL_EINVAL;
    if ((size_t)n < sizeof small)
        return ahl_buf_add(b, small, (size_t)n);
    int rc = ahl_buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void ahl_buf_reset(struct ahl_buf *b)
{
    ahl_buf_truncate(b, 0);
}

void ahl_buf_truncate(struct ahl_buf *b, size_t len)
{
    if (len > b->len)
        AHL_BUG("ahl_buf_truncate to %zu beyond length %zu", len, b->len);
    b->len = len;
    if (b->cap)
        b->data[len] = '\0';
}

char *ahl_buf_detach(struct ahl_buf *b, size_t *len)
{
    char *p;
    if (!b->cap) {
        p = malloc(1);
        if (!p)
            return NULL;
        p[0] = '\0';
    } else {
        p = b->data;
    }
    if (len)
        *len = b->len;
    ahl_buf_init(b, b->max);
    return p;
}

void ahl_buf_release(struct ahl_buf *b)
{
    if (b->cap)
        free(b->data);
    ahl_buf_init(b, b->max);
}

void *ahl_array_grow(void *v, size_t *cap, size_t elem, size_t first)
{
    size_t ncap = *cap ? *cap * 2 : first;
    if (ncap < *cap || ncap > ((size_t)-1) / elem)
        return NULL;
    void *nv = realloc(v, ncap * elem);
    if (nv)
        *cap = ncap;
    return nv;
}
