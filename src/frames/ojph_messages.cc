// OpenJPH's messages for the frames module (ojph_messages.h): errors become exceptions that carry
// the message; warnings and information are dropped instead of printed.
//
// OpenJPH 0.9.0's configure_error/_warning/_info do nothing (each assigns its argument to itself),
// so there its default handlers stay: they print to the library's streams (information to stdout,
// which is where `ahilite frames` writes its JSON lines) and the error handler then throws
// std::runtime_error("ojph error"). The streams are therefore also pointed at /dev/null: with
// 0.9.0 errors still throw, without their text; with a fixed OpenJPH our handlers run instead.
#include <openjph/ojph_arch.h>
#include <openjph/ojph_message.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "frames/ojph_messages.h"

namespace
{

class throwing_error : public ojph::message_error
{
  public:
    void operator()(int code, const char *file, int line, const char *fmt, ...) override
    {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        char full[320];
        snprintf(full, sizeof full, "OpenJPH error 0x%x (%s:%d): %s", code, file, line, msg);
        throw std::runtime_error(full);
    }
};

class quiet_warning : public ojph::message_warning
{
  public:
    void operator()(int, const char *, int, const char *, ...) override
    {
    }
};

class quiet_info : public ojph::message_info
{
  public:
    void operator()(int, const char *, int, const char *, ...) override
    {
    }
};

throwing_error g_error;
quiet_warning g_warning;
quiet_info g_info;
std::once_flag g_configured;

} // namespace

void ahl_ojph::configure_messages()
{
    std::call_once(g_configured, [] {
        ojph::configure_error(&g_error);
        ojph::configure_warning(&g_warning);
        ojph::configure_info(&g_info);
        static FILE *null_stream = fopen("/dev/null", "we");
        if (null_stream) {
            ojph::set_error_stream(null_stream);
            ojph::set_warning_stream(null_stream);
            ojph::set_info_stream(null_stream);
        }
    });
}
