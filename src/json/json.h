/* JSON output: a streaming writer with exact number formatting, and jansson glue.
 *
 * jansson parses and edits; this module writes. Output is compact (no spaces), keys in the
 * object's insertion order, strings escaped minimally (only '"', '\\' and control characters;
 * non-ASCII UTF-8 is written as is, so output is valid UTF-8 whenever the input strings are).
 * Integers print as integers; reals print in the shortest form that reads back to the same double
 * ("0.1", not "0.10000000000000001"); a real with an integral value prints with ".0" only if
 * needed to stay a real ("1.0"). The text is exactly Python's repr(float): fixed notation for
 * decimal exponents -4..15, otherwise "1e-05" / "1.5e+300". Non-finite reals are an error (JSON
 * cannot carry them); so is nesting deeper than 2048 levels (AHL_ETOOBIG). On any failure the
 * buffer is left as it was.
 */
#ifndef AHL_JSON_JSON_H
#define AHL_JSON_JSON_H

#include <jansson.h>

#include "base/buf.h"

/* Appends the JSON text of v to out. 0, AHL_EINVAL (non-finite real), AHL_ENOMEM, AHL_ETOOBIG. */
int ahl_json_write(const json_t *v, struct ahl_buf *out);
/* The same document laid out for people: each member and element on its own line, indented by
 * indent spaces (1..16) per level, ": " after keys. Numbers and strings as ahl_json_write. */
int ahl_json_write_pretty(const json_t *v, int indent, struct ahl_buf *out);
/* Appends s (n bytes) as a JSON string literal, quotes included. */
int ahl_json_write_string(const char *s, size_t n, struct ahl_buf *out);
/* Appends a real number in the shortest round-trip form described above. */
int ahl_json_write_real(double d, struct ahl_buf *out);

#endif /* AHL_JSON_JSON_H */
