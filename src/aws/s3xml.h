/* A small reader for the XML that S3 replies with: error bodies and ListObjectsV2 pages.
 *
 * S3's replies are flat and attribute-free apart from the root's xmlns, so elements are found by
 * name rather than through a tree: ahl_s3xml_find gives the content of the first <Tag>...</Tag>
 * (or <Tag/>) in a span, ahl_s3xml_text decodes that content. Everything here is a pure function
 * over the bytes it is given (no NUL terminator needed, nothing read outside [p, end)), so it is
 * fuzzed directly (tests/fuzz/fuzz_s3_xml.c).
 *
 * Listings are asked for with encoding-type=url so that keys with characters XML 1.0 cannot carry
 * survive; a page saying <EncodingType>url</EncodingType> has its keys percent-decoded, with '+'
 * as a space (botocore's unquote_plus). */
#ifndef AHL_AWS_S3XML_H
#define AHL_AWS_S3XML_H

#include <stddef.h>

#include "aws/s3.h"
#include "base/buf.h"
#include "base/err.h"

/* Finds the first element named tag in [p, end): <tag>content</tag>, or <tag/> (empty content).
 * Sets [*vs, *ve) to the content. 0, or -1 when there is none (or it is not closed). A tag with
 * attributes is not matched; the content is not parsed, so a nested element of the same name
 * ends it early. */
int ahl_s3xml_find(const char *p, const char *end, const char *tag, const char **vs,
                   const char **ve);

/* Appends the character data of [s, e) to out, decoded: the five predefined entities, decimal and
 * hexadecimal character references (of a Unicode scalar value other than U+0000, as UTF-8) and
 * <![CDATA[...]]> sections (their bytes as they are). Markup other than CDATA is copied as text.
 * 0, AHL_EPARSE on an unknown or malformed reference or an unterminated CDATA section, AHL_ENOMEM
 * or AHL_ETOOBIG from out. */
int ahl_s3xml_text(const char *s, const char *e, struct ahl_buf *out);

/* The Code and Message of an S3 error body, decoded and appended to code and msg; either is left
 * as it was when absent or unreadable. */
void ahl_s3xml_error(const char *xml, size_t n, struct ahl_buf *code, struct ahl_buf *msg);

/* Reads one ListObjectsV2 page (a <ListBucketResult>): calls fn with each <Contents>' Key
 * (decoded, 1 to AHL_S3_MAX_KEY bytes without NUL) and Size (decimal; 0 when absent), in the order
 * of the page; then sets *truncated from IsTruncated ("true" or not) and appends
 * NextContinuationToken, decoded, to next_token (nothing when absent). Returns 0; fn's value as
 * it is when fn returns non-zero (err untouched); AHL_EPARSE with err saying what is wrong (not a
 * ListBucketResult, a bad Key or Size), keys before the bad one having been handed to fn; or
 * AHL_ENOMEM/AHL_ETOOBIG. */
int ahl_s3xml_list_page(const char *xml, size_t n, ahl_s3_key_fn fn, void *ctx, int *truncated,
                        struct ahl_buf *next_token, struct ahl_err *err);
/* ahl_s3xml_list_page, also handing fn each key's LastModified (ms since 1970, UTC; -1 when
 * absent). A LastModified that is not YYYY-MM-DDTHH:MM:SS[.fraction]Z is AHL_EPARSE. */
int ahl_s3xml_list_page_timed(const char *xml, size_t n, ahl_s3_entry_fn fn, void *ctx,
                              int *truncated, struct ahl_buf *next_token, struct ahl_err *err);
/* An ISO 8601 UTC time as S3 writes it (2026-12-08T02:49:05.123Z, the fraction optional) between
 * s and e, in ms since 1970. 0 or AHL_EPARSE. */
int ahl_s3xml_time(const char *s, const char *e, int64_t *ms);

#endif /* AHL_AWS_S3XML_H */
