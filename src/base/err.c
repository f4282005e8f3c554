/* Error codes, their names and texts, and the error-detail record. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/text.h"
#include "base/banned.h"

const char *ahl_strerror(int code)
{
    switch (code) {
    case AHL_OK:
        return "success";
#define AHL__ERRNO_TEXT(name, value, text)                                                         \
    case AHL_##name:                                                                               \
        return text;
        AHL_ERRNO_MAP(AHL__ERRNO_TEXT)
#undef AHL__ERRNO_TEXT
    }
    return "unknown error";
}

const char *ahl_err_name(int code)
{
    switch (code) {
    case AHL_OK:
        return "OK";
#define AHL__ERRNO_NAME(name, value, text)                                                         \
    case AHL_##name:                                                                               \
        return #name;
        AHL_ERRNO_MAP(AHL__ERRNO_NAME)
#undef AHL__ERRNO_NAME
    }
    return "EUNKNOWN";
}

__attribute__((format(printf, 4, 0))) static void record(struct ahl_err *err, int code, int detail,
                                                         const char *fmt, va_list ap)
{
    err->code = code;
    err->detail = detail;
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    if (n >= (int)sizeof err->msg)
        ahl_utf8_trim_cut(err->msg, sizeof err->msg - 1);
}

int ahl_fail(struct ahl_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        record(err, code, 0, fmt, ap);
        va_end(ap);
    }
    return code;
}

int ahl_fail_detail(struct ahl_err *err, int code, int detail, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        record(err, code, detail, fmt, ap);
        va_end(ap);
    }
    return code;
}

void ahl_err_clear(struct ahl_err *err)
{
    if (err) {
        err->code = 0;
        err->detail = 0;
        err->msg[0] = '\0';
    }
}

void ahl__bug(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "BUG at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
