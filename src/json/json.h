/* JSON output: a streaming writer with exact number formatting, and jansson glue.
 *
 * jansson parses and edits; this module writes. Output is compact (no spaces), keys in the
 * object's insertion order, strings escaped minimally (only '"', '\\' and control characters;
 * non-ASCII UTF-8 is written as is, so output is valid UTF-8 whenever the input strings are).
 * Integers print as integers; reals print in the shortest form that reads back to the same double
 * ("0.1", not "0.10000000000000001"); a real with an integral value prints with ".0" only if
 * needed to stay a real ("1.0"). Non-finite reals are an error (JSON cannot carry them).
 */
#ifndef AHL_JSON_JSON_H
#define AHL_JSON_JSON_H

#include <jansson.h>

#include "base/buf.h"

/* Appends the JSON text of v to out. 0, AHL_EINVAL (non-finite real), AHL_ENOMEM, AHL_ETOOBIG. */
int ahl_json_write(const json_t *v, struct ahl_buf *out);
/* Appends s (n bytes) as a JSON string literal, quotes included. */
int ahl_json_write_string(const char *s, size_t n, struct ahl_buf *out);
/* Appends a real number in the shortest round-trip form described above. */
int ahl_json_write_real(double d, struct ahl_buf *out);

#endif /* AHL_JSON_JSON_H */
