/* Small text helpers shared by the layers that read URLs, queries and keys: percent-decoding
 * (RFC 3986, strict) and UTF-8 validation. Percent-encoding lives with SigV4
 * (ahl_sigv4_uri_encode), whose rules define it. */
#ifndef AHL_BASE_TEXT_H
#define AHL_BASE_TEXT_H

#include <stddef.h>

#include "base/buf.h"

/* Appends the percent-decoded bytes of s[0..n) to out. Strict: every '%' must be followed by two
 * hex digits (either case); '+' stays '+' (it is not a space outside HTML forms). 0, AHL_EPARSE
 * (out unchanged), AHL_ENOMEM or AHL_ETOOBIG. */
int ahl_percent_decode(const char *s, size_t n, struct ahl_buf *out);

/* Whether s[0..n) is well-formed UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF. NUL bytes are well-formed; callers that refuse them check separately. */
int ahl_utf8_valid(const char *s, size_t n);

#endif /* AHL_BASE_TEXT_H */
