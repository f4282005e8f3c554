// module: api
/* Fuzzes the restJson1 request codec with whole requests in a small text form:
 *
 *     METHOD\n
 *     raw path (still percent-encoded)\n
 *     raw query without '?'  (an empty line means "no query string")\n
 *     name: value\n          (headers, up to a blank line)
 *     \n
 *     body (any bytes, NULs included)
 *
 * Each request is routed; when it routes, it is decoded and validated for its operation, and it is
 * also decoded as one other operation chosen by the input (so every decoder path meets every kind
 * of path, query and body). The body, when it parses as JSON, is validated against a shape chosen
 * by the input. Nothing may crash, leak or read out of bounds, and these invariants must hold:
 *   - a failing call leaves an AWS error type and a non-empty, NUL-terminated, valid UTF-8
 *     message (it goes into a JSON error body that clients parse), and no decoded input;
 *   - a decoded input is a JSON object that validates again against the operation's input shape;
 *   - the error body of any failure is valid JSON with __type and message. */
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "api/codec.h"
#include "api/model.h"
#include "base/text.h"

#define MAX_HEADERS 32

struct req {
    char *names[MAX_HEADERS], *values[MAX_HEADERS];
    size_t n;
};

static const char *lookup(void *ctx, const char *name)
{
    struct req *r = ctx;
    for (size_t i = 0; i < r->n; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

/* The next line of [*p, end) as a new NUL-terminated string (a NUL inside ends it early, as it
 * would in a C string handed over by the HTTP library); advances *p past the '\n'. */
static char *take_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *s = *p;
    const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    char *line = strndup((const char *)s, n);
    if (!line)
        abort();
    *p = nl ? nl + 1 : end;
    return line;
}

static void check_failure(int rc, const struct ahl_err *err)
{
    if (rc >= 0)
        abort();
    if (err->code != rc || !err->msg[0])
        abort();
    const char *type = ahl_api_error_type(err);
    size_t n = strnlen(err->msg, sizeof err->msg);
    if (n == sizeof err->msg || !ahl_utf8_valid(err->msg, n))
        abort();
    struct ahl_buf b;
    ahl_buf_init(&b, 1 << 16);
    if (ahl_api_error_body(type, err->msg, &b) < 0)
        abort();
    json_error_t jerr;
    json_t *doc = json_loadb(b.data, b.len, 0, &jerr);
    if (!doc || !json_is_string(json_object_get(doc, "__type")) ||
        strcmp(json_string_value(json_object_get(doc, "message")), err->msg) != 0)
        abort();
    json_decref(doc);
    ahl_buf_release(&b);
    int status = ahl_api_error_status(type);
    if (status < 400 || status > 599)
        abort();
}

static void decode_as(enum ahl_op_id op, const struct ahl_api_http *http)
{
    json_t *in = NULL;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_api_decode(op, http, &in, &err);
    if (rc < 0) {
        if (in)
            abort();
        check_failure(rc, &err);
        return;
    }
    if (!json_is_object(in))
        abort();
    struct ahl_err again;
    ahl_err_clear(&again);
    if (ahl_api_validate(ahl_model_ops[op].input, in, "", &again) != 0)
        abort();
    /* The typed readers must cope with any member of any type. */
    for (size_t i = 0; i < ahl_model_shapes[ahl_model_ops[op].input].n_members; i++) {
        const char *m = ahl_model_shapes[ahl_model_ops[op].input].members[i].name;
        (void)ahl_api_str(in, m);
        (void)ahl_api_bool(in, m, 0);
        (void)ahl_api_int(in, m, 0);
        (void)ahl_api_timestamp_ms(json_object_get(in, m));
    }
    json_decref(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    struct req hdrs = {.n = 0};
    char *method = take_line(&p, end);
    char *path = take_line(&p, end);
    char *query = take_line(&p, end);
    while (p < end && *p != '\n') {
        char *line = take_line(&p, end);
        char *colon = strchr(line, ':');
        if (!colon || hdrs.n == MAX_HEADERS) {
            free(line);
            continue;
        }
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        hdrs.names[hdrs.n] = line;
        hdrs.values[hdrs.n] = strdup(v);
        if (!hdrs.values[hdrs.n])
            abort();
        hdrs.n++;
    }
    if (p < end)
        p++; /* the blank line */
    size_t body_len = (size_t)(end - p);

    struct ahl_api_http http = {
        .method = method,
        .path = path,
        .query = query[0] ? query : NULL,
        .body = (const char *)p,
        .body_len = body_len,
        .header = lookup,
        .header_ctx = &hdrs,
    };

    /* The input picks a second operation and a shape from its own bytes, cheaply and stably. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        h = (h ^ data[i]) * 16777619u;

    enum ahl_op_id op = AHL_OP__COUNT;
    struct ahl_err err;
    ahl_err_clear(&err);
    int rc = ahl_api_route(method, path, &op, &err);
    if (rc == 0) {
        if ((int)op < 0 || op >= AHL_OP__COUNT)
            abort();
        decode_as(op, &http);
    } else {
        check_failure(rc, &err);
    }
    decode_as((enum ahl_op_id)(h % AHL_OP__COUNT), &http);

    json_error_t jerr;
    json_t *body = json_loadb(http.body, body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (body) {
        ahl_err_clear(&err);
        rc = ahl_api_validate((enum ahl_shape_id)((h >> 8) % AHL_SHAPE__COUNT), body, "body", &err);
        if (rc < 0)
            check_failure(rc, &err);
        json_decref(body);
    }

    for (size_t i = 0; i < hdrs.n; i++) {
        free(hdrs.names[i]);
        free(hdrs.values[i]);
    }
    free(method);
    free(path);
    free(query);
    return 0;
}
