/* The restJson1 request decoder and validator, and the response/error encoders, driven by the model
 * tables of model.h.
 *
 * A request goes through three steps, each of which either succeeds or leaves an AWS error in the
 * caller's struct ahl_err (type + message a user can act on):
 *
 *     enum ahl_op_id op;
 *     json_t *in = NULL;
 *     if (ahl_api_route(method, raw_path, &op, &err) < 0) ...       404 UnknownOperationException
 *     if (ahl_api_decode(op, &http, &in, &err) < 0) ...               400 ValidationException
 *     ... run the operation, reading members of `in` by member name ...
 *     json_decref(in);
 *
 * The decoded input is one JSON object holding every member of the operation's input shape under
 * its member name, wherever it travelled (label, query string, header, body, or the whole body for
 * a payload member), already converted to the member's type (query integers are JSON integers,
 * booleans JSON booleans, repeated query keys arrays). It has been validated against the model:
 * required members, types, string lengths (in characters), integer ranges, list and map sizes,
 * patterns, enums, union-ness and decoded blob sizes. Unknown JSON keys and unknown query
 * parameters are ignored, and an empty body is the same as "{}".
 *
 * Validation messages follow AWS's wording:
 *   1 validation error detected: Value 'x' at 'datastoreId' failed to satisfy constraint: Member
 *   must satisfy regular expression pattern: [0-9a-z]{32}
 * Values of members the model marks sensitive are not echoed.
 */
#ifndef AHL_API_CODEC_H
#define AHL_API_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/model.h"
#include "base/buf.h"
#include "base/err.h"

/* The largest JSON request body accepted (docs/decisions.md#request-limits). */
#define AHL_API_MAX_BODY (1u << 20)
/* How many validation problems one message lists at most. */
#define AHL_API_MAX_VALIDATION_ERRORS 10

/* AWS error types, as the service model names them (and, for authentication, the AWS JSON
 * services). Only this layer names errors: the layers below return AHL_E* codes, messages and,
 * where a module defines one, a finer reason in struct ahl_err's detail; ahl_api_error_type()
 * below is the one mapping from those to a type. */
#define AHL_AWS_VALIDATION "ValidationException"
#define AHL_AWS_NOT_FOUND "ResourceNotFoundException"
#define AHL_AWS_CONFLICT "ConflictException"
#define AHL_AWS_ACCESS_DENIED "AccessDeniedException"
#define AHL_AWS_QUOTA "ServiceQuotaExceededException"
#define AHL_AWS_THROTTLING "ThrottlingException"
#define AHL_AWS_INTERNAL "InternalServerException"
#define AHL_AWS_UNKNOWN_OPERATION "UnknownOperationException"
#define AHL_AWS_BAD_REQUEST "BadRequestException"
#define AHL_AWS_NOT_ACCEPTABLE "NotAcceptableException"
#define AHL_AWS_MISSING_TOKEN "MissingAuthenticationTokenException" /* 403: no auth at all */
#define AHL_AWS_INCOMPLETE_SIGNATURE "IncompleteSignatureException" /* 400: malformed auth */
#define AHL_AWS_UNRECOGNIZED_CLIENT "UnrecognizedClientException"   /* 403: unknown key/token */
#define AHL_AWS_INVALID_SIGNATURE "InvalidSignatureException" /* 403: mismatch, expired, scope */
#define AHL_AWS_UNAUTHORIZED "UnauthorizedException"          /* 401: a bearer token refused */

/* Finer reasons this layer records in struct ahl_err's detail. */
enum ahl_api_failure {
    AHL_API_FAIL_UNKNOWN_OPERATION = 1, /* with AHL_ENOTFOUND: no operation has this route */
};

/* What the decoder needs from an HTTP request. */
struct ahl_api_http {
    const char *method;
    const char *path;  /* as received, still percent-encoded, without the query string */
    const char *query; /* raw query string without '?', or NULL */
    const char *body;
    size_t body_len;
    /* Looks a request header up by name (case-insensitive); NULL when absent. */
    const char *(*header)(void *ctx, const char *name);
    void *header_ctx;
};

/* Finds the operation for a method and raw path. 0, or AHL_ENOTFOUND with an
 * UnknownOperationException message in err. Routing works on the still-encoded path, so an ARN
 * label with %2F stays one segment. */
int ahl_api_route(const char *method, const char *path, enum ahl_op_id *op, struct ahl_err *err);

/* Decodes and validates the request for op. On success *input is a new reference the caller
 * releases. 0, or AHL_EPARSE (ValidationException in err), AHL_ETOOBIG, AHL_ENOMEM. */
int ahl_api_decode(enum ahl_op_id op, const struct ahl_api_http *http, json_t **input,
                   struct ahl_err *err);

/* Validates value (borrowed; NULL or JSON null means absent) against shape, reporting problems
 * under the member path `path`. Exposed for unit tests and for operations that validate nested
 * documents the same way. */
int ahl_api_validate(enum ahl_shape_id shape, const json_t *value, const char *path,
                     struct ahl_err *err);

/* The AWS error type an operation's error is reported with, from its code and (for this layer's
 * own errors) detail: the input's faults (EINVAL, EPARSE, ETOOBIG, EUNSUPPORTED) are
 * ValidationException, ENOTFOUND ResourceNotFoundException, ECONFLICT ConflictException, EAUTH and
 * EDENIED AccessDeniedException, EQUOTA ServiceQuotaExceededException, and everything else (memory,
 * I/O, damaged data, internal errors) InternalServerException. */
const char *ahl_api_error_type(const struct ahl_err *err);
/* The AWS error type of an authentication failure from ahl_sigv4_verify: its AHL_SIGV4_FAIL_* kind
 * named, or InternalServerException for the server's own failures (no kind). */
const char *ahl_api_auth_error_type(const struct ahl_err *err);
/* The HTTP status the model gives an error type (403 for the authentication types, 404 for
 * UnknownOperationException, 400 for types the model does not know). */
int ahl_api_error_status(const char *aws_type);
/* Appends the JSON body of an AWS error: {"__type":T,"message":M}. */
int ahl_api_error_body(const char *aws_type, const char *message, struct ahl_buf *out);

/* Timestamps go out as epoch seconds with a millisecond fraction. */
json_t *ahl_api_timestamp(int64_t ms);
/* Reads a timestamp member (JSON integer or real seconds) as milliseconds. */
int64_t ahl_api_timestamp_ms(const json_t *v);

/* Small typed readers over a decoded input (NULL/absent-safe). */
const char *ahl_api_str(const json_t *input, const char *member);
int ahl_api_bool(const json_t *input, const char *member, int dflt);
int64_t ahl_api_int(const json_t *input, const char *member, int64_t dflt);

/* ---- within src/api (and its tests) ---- */

/* A model pattern matched without regexec: ^([SET]+)$ or ^([SET]{N})$ where SET is a bracket
 * expression of ASCII characters and ranges (no negation, classes or escapes). */
struct ahl__api_simple_pattern {
    bool usable;
    bool admits[256]; /* the bytes SET admits */
    size_t exact;     /* {N}: exactly N of them; 0: one or more */
};
/* Whether the POSIX extended regular expression re has that form; *out describes it. */
bool ahl__api_simple_pattern(const char *re, struct ahl__api_simple_pattern *out);
/* Whether the NUL-terminated s matches it, as regexec(re, s) would. */
bool ahl__api_simple_match(const struct ahl__api_simple_pattern *sp, const char *s);

#endif /* AHL_API_CODEC_H */
