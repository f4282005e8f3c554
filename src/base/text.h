/* Small text helpers: bounded string copies, percent-decoding (RFC 3986, strict) and UTF-8
 * validation. Percent-encoding lives with SigV4
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

/* The one bounded string copy. Copies src (NULL: "") into dst, which holds cap > 0 bytes, always
 * NUL-terminated. 0 when it fits; AHL_ETOOBIG when it does not, and dst then holds the longest
 * prefix that fits without splitting a UTF-8 character. The result must be used: a value that
 * does not fit is an error unless the caller says a cut is fine by calling ahl_str_copy_cut. */
int ahl_str_copy(char *dst, size_t cap, const char *src) __attribute__((warn_unused_result));

/* ahl_str_copy for text where a cut is acceptable (messages and reasons shown to people). */
void ahl_str_copy_cut(char *dst, size_t cap, const char *src);

/* Shortens s[0..len) (NUL-terminated at len) so that it does not end inside a UTF-8 character:
 * a partial trailing character is replaced by the terminating NUL. */
void ahl_utf8_trim_cut(char *s, size_t len);

#endif /* AHL_BASE_TEXT_H */
