/* Error codes shared by every module.
 *
 * Functions return int: 0 on success or a negative AHL_E* code from the single list below.
 * Where a caller needs detail (request validation, the DICOM reader, the update engine), it
 * passes an optional struct ahl_err that receives the code and a message a user can act on, and,
 * where a module defines finer reasons than the code (SigV4's kinds of authentication failure),
 * that reason in `detail`. NULL is always accepted. How an error is presented (the AWS error type,
 * the HTTP status) is the API's business (api/codec.h), not this module's.
 *
 *     return ahl_fail(err, AHL_EPARSE, "truncated element at offset %zu", off);
 */
#ifndef AHL_BASE_ERR_H
#define AHL_BASE_ERR_H

#include <stddef.h>

#define AHL_ERRNO_MAP(X)                                                                          \
    X(ENOMEM, -1, "out of memory")                                                                \
    X(EINVAL, -2, "invalid argument")                                                             \
    X(EPARSE, -3, "malformed input")                                                              \
    X(ETOOBIG, -4, "size limit exceeded")                                                         \
    X(ENOTFOUND, -5, "not found")                                                                 \
    X(ECONFLICT, -6, "conflict")                                                                  \
    X(EAUTH, -7, "authentication failed")                                                         \
    X(EIO, -8, "i/o error")                                                                       \
    X(EUNSUPPORTED, -9, "not supported")                                                          \
    X(ECORRUPT, -10, "stored data is damaged")                                                    \
    X(EQUOTA, -11, "quota exceeded")                                                              \
    X(EDENIED, -12, "access denied")                                                              \
    X(EINTERNAL, -13, "internal error")                                                           \
    X(ENOSPC, -14, "the disk holding the data directory is full")

enum ahl_errno {
    AHL_OK = 0,
#define AHL__ERRNO_ENUM(name, value, text) AHL_##name = (value),
    AHL_ERRNO_MAP(AHL__ERRNO_ENUM)
#undef AHL__ERRNO_ENUM
};

struct ahl_err {
    int code;   /* AHL_E* */
    int detail; /* a finer reason the failing module defines (its own enum); 0: none */
    char msg[512];
};

/* The text of an AHL_E* code ("out of memory"); "unknown error" for anything else. */
const char *ahl_strerror(int code);
/* The name of an AHL_E* code ("ENOMEM"). */
const char *ahl_err_name(int code);
/* Records code and message (detail 0) into err (if not NULL) and returns code, so a caller can
 * write `return ahl_fail(err, ...)`. A message longer than err->msg is cut at a character
 * boundary. */
int ahl_fail(struct ahl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a finer reason in err->detail. */
int ahl_fail_detail(struct ahl_err *err, int code, int detail, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Clears err to "no error". */
void ahl_err_clear(struct ahl_err *err);

/* Aborts with file:line and a message: for broken invariants, never for bad input. */
#define AHL_BUG(...) ahl__bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void ahl__bug(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* AHL_BASE_ERR_H */
