/* A growable byte buffer with a hard maximum size.
 *
 * Invariants: after ahl_buf_init() data is never NULL (it points at a static "" until the first
 * append), data[len] == '\0' and len <= max. A failed append returns AHL_ENOMEM or AHL_ETOOBIG and
 * leaves the buffer exactly as it was, so a caller can report what it had and release once.
 *
 *     struct ahl_buf b;
 *     ahl_buf_init(&b, 1 << 20);
 *     if (ahl_buf_add(&b, p, n) < 0 || ahl_buf_addf(&b, "%d", x) < 0) goto out;
 *     ...
 *   out:
 *     ahl_buf_release(&b);
 */
#ifndef AHL_BASE_BUF_H
#define AHL_BASE_BUF_H

#include <stddef.h>

struct ahl_buf {
    char *data;
    size_t len;
    size_t cap; /* 0 while data points at the static empty string */
    size_t max; /* hard limit on len */
};

#define AHL_BUF_UNLIMITED ((size_t)-1 / 2)

/* Makes an empty buffer that may grow to max bytes. Allocates nothing; cannot fail. */
void ahl_buf_init(struct ahl_buf *b, size_t max);
/* Appends n bytes. 0, AHL_ENOMEM or AHL_ETOOBIG. */
int ahl_buf_add(struct ahl_buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
int ahl_buf_adds(struct ahl_buf *b, const char *s);
/* Appends one byte. */
int ahl_buf_addc(struct ahl_buf *b, char c);
/* Appends printf-formatted text. */
int ahl_buf_addf(struct ahl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for at least n more bytes without changing the contents. */
int ahl_buf_reserve(struct ahl_buf *b, size_t n);
/* Empties the buffer, keeping its memory. */
void ahl_buf_reset(struct ahl_buf *b);
/* Shortens the buffer to len bytes (len <= b->len). */
void ahl_buf_truncate(struct ahl_buf *b, size_t len);
/* Hands the contents (always heap memory, NUL-terminated) to the caller, who frees them; the
 * buffer is re-initialised with the same max. Returns NULL only when out of memory. */
char *ahl_buf_detach(struct ahl_buf *b, size_t *len);
/* Frees the contents; the buffer is re-initialised and may be used again. */
void ahl_buf_release(struct ahl_buf *b);

/* Growable arrays: when an array of *cap elements of elem bytes is full, returns it reallocated
 * to twice the capacity (first elements the first time) and updates *cap; returns NULL when out of
 * memory or when the size would overflow, leaving the array and *cap as they were.
 *
 *     if (s->n == s->cap) {
 *         struct rec *v = ahl_array_grow(s->v, &s->cap, sizeof *v, 16);
 *         if (!v) return AHL_ENOMEM;
 *         s->v = v;
 *     }
 */
void *ahl_array_grow(void *v, size_t *cap, size_t elem, size_t first);

#endif /* AHL_BASE_BUF_H */
