/* Error codes, their names and texts, and the error-detail record. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/text.h"

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

const char *ahl_err_default_aws_type(int code)
{
    switch (code) {
    case AHL_EINVAL:
    case AHL_EPARSE:
    case AHL_ETOOBIG:
    case AHL_EUNSUPPORTED:
        return AHL_AWS_VALIDATION;
    case AHL_ENOTFOUND:
        return AHL_AWS_NOT_FOUND;
    case AHL_ECONFLICT:
        return AHL_AWS_CONFLICT;
    case AHL_EAUTH:
    case AHL_EDENIED:
        return AHL_AWS_ACCESS_DENIED;
    case AHL_EQUOTA:
        return AHL_AWS_QUOTA;
    default:
        return AHL_AWS_INTERNAL;
    }
}

int ahl_fail(struct ahl_err *err, int code, const char *aws_type, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->aws_type = aws_type ? aws_type : ahl_err_default_aws_type(code);
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof err->msg)
            ahl_utf8_trim_cut(err->msg, sizeof err->msg - 1);
    }
    return code;
}

void ahl_err_clear(struct ahl_err *err)
{
    if (err) {
        err->code = 0;
        err->aws_type = NULL;
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
