/* restJson1 request routing, decoding and validation from the model tables; error bodies.
 *
 * Everything here is driven by model_table.c: a new member or constraint in the model is decoded
 * and enforced without touching this file. The validator walks the model's shapes, not the input,
 * so its recursion depth is bounded by the (acyclic, shallow) model whatever the request holds.
 */
#include "api/codec.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/sigv4.h"
#include "base/codec.h"
#include "base/text.h"
#include "json/json.h"
#include "base/banned.h"

/* ---- compiled pattern cache ------------------------------------------------------------- */

/* Every pattern of the model is compiled once, on first use; regexec on a shared regex_t is
 * thread-safe in glibc. Most patterns are one bracket expression repeated, ^([0-9a-z]{32})$ for
 * every id: those are matched with a table of the bytes the bracket admits instead, since
 * glibc's regexec costs about a microsecond a call and a request checks several ids. */
static regex_t g_regex[AHL_SHAPE__COUNT];
static struct ahl__api_simple_pattern g_simple[AHL_SHAPE__COUNT];
static pthread_once_t g_regex_once = PTHREAD_ONCE_INIT;

bool ahl__api_simple_pattern(const char *re, struct ahl__api_simple_pattern *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(re, "^([", 3) != 0)
        return false;
    const char *p = re + 3;
    if (*p == '^' || *p == ']') /* a negation, or ']' as its first member: left to regexec */
        return false;
    for (; *p && *p != ']';) {
        unsigned char a = (unsigned char)*p, b = a;
        if (a == '[' || a == '\\' || a >= 0x80) /* classes, escapes, bytes of a locale */
            return false;
        if (p[1] == '-' && p[2] && p[2] != ']') { /* a range a-b; a '-' before ']' is itself */
            b = (unsigned char)p[2];
            if (b < a || b == '[' || b == '\\' || b >= 0x80)
                return false;
            p += 3;
        } else {
            p++;
        }
        for (unsigned c = a; c <= b; c++)
            out->admits[c] = true;
    }
    if (*p++ != ']')
        return false;
    if (!strcmp(p, "+)$")) {
        out->exact = 0;
    } else if (*p == '{' && p[1] >= '1' && p[1] <= '9') {
        char *end;
        out->exact = strtoul(p + 1, &end, 10);
        if (strcmp(end, "})$") != 0)
            return false;
    } else {
        return false;
    }
    out->usable = true;
    return true;
}

bool ahl__api_simple_match(const struct ahl__api_simple_pattern *sp, const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!sp->admits[(unsigned char)s[n]])
            return false;
    return sp->exact ? n == sp->exact : n > 0;
}

static void compile_patterns(void)
{
    for (int i = 0; i < AHL_SHAPE__COUNT; i++) {
        const struct ahl_model_shape *s = &ahl_model_shapes[i];
        if (!s->regex || ahl__api_simple_pattern(s->regex, &g_simple[i]))
            continue;
        int rc = regcomp(&g_regex[i], s->regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0)
            AHL_BUG("pattern of %s does not compile as POSIX ERE: %s", s->name, s->regex);
    }
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* Counts UTF-8 code points; -1 if s is not well-formed UTF-8 (ahl_utf8_valid) or holds a NUL. */
static long utf8_chars(const char *s, size_t n)
{
    if (memchr(s, '\0', n) || !ahl_utf8_valid(s, n))
        return -1;
    long count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

/* Copies at most max bytes of s (NUL-terminated) into out (cap bytes with the NUL) for quoting in
 * an error message, which travels in a JSON body and must be valid UTF-8 whatever the request
 * held: a multi-byte character is never split, and a byte that does not begin a well-formed
 * character is written as '?'. Returns whether s was cut. */
static int quote_excerpt(const char *s, size_t max, char *out, size_t cap)
{
    size_t i = 0, o = 0;
    if (max > cap - 1)
        max = cap - 1;
    while (s[i] && o < max) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (strnlen(s + i, len) < len || !ahl_utf8_valid(s + i, len))
            len = 0; /* not a well-formed character here: one byte, shown as '?' */
        if (o + (len ? len : 1) > max)
            break;
        if (len) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            out[o++] = '?';
            i++;
        }
    }
    out[o] = '\0';
    return s[i] != '\0';
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Matches a raw path against a template. On a match, fills labels[] with pointers into path and
 * lengths (one per "{label}" in order) and returns the number of labels; -1 when it does not
 * match. */
#define MAX_LABELS 4
struct label_span {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

static int match_template(const char *tmpl, const char *path, struct label_span *labels)
{
    int n = 0;
    const char *t = tmpl, *p = path;
    while (*t && *p) {
        if (*t != '/' || *p != '/')
            return -1;
        t++;
        p++;
        const char *te = strchr(t, '/');
        const char *pe = strchr(p, '/');
        size_t tl = te ? (size_t)(te - t) : strlen(t);
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        if (tl >= 2 && t[0] == '{' && t[tl - 1] == '}') {
            if (pl == 0 || n == MAX_LABELS)
                return -1;
            labels[n].name = t + 1;
            labels[n].name_len = tl - 2;
            labels[n].value = p;
            labels[n].value_len = pl;
            n++;
        } else if (tl != pl || memcmp(t, p, tl) != 0) {
            return -1;
        }
        t += tl;
        p += pl;
    }
    return (*t == 0 && *p == 0) ? n : -1;
}

int ahl_api_route(const char *method, const char *path, enum ahl_op_id *op, struct ahl_err *err)
{
    struct label_span labels[MAX_LABELS];
    int path_matched = 0;
    for (int i = 0; i < AHL_OP__COUNT; i++) {
        if (match_template(ahl_model_ops[i].uri, path, labels) < 0)
            continue;
        path_matched = 1;
        if (strcmp(ahl_model_ops[i].method, method) == 0) {
            *op = (enum ahl_op_id)i;
            return 0;
        }
    }
    char m[17], p[201];
    quote_excerpt(method, sizeof m - 1, m, sizeof m);
    if (path_matched)
        return ahl_fail_detail(err, AHL_ENOTFOUND, AHL_API_FAIL_UNKNOWN_OPERATION,
                               "No operation matches method %s on this path", m);
    quote_excerpt(path, sizeof p - 1, p, sizeof p);
    return ahl_fail_detail(err, AHL_ENOTFOUND, AHL_API_FAIL_UNKNOWN_OPERATION,
                           "No operation matches %s %s", m, p);
}

/* ---- validation ------------------------------------------------------------------------- */

struct vstate {
    int count;
    int nomem;
    struct ahl_buf msg; /* "Value ... ; Value ..." */
};

static void vadd(struct vstate *vs, const char *value, int sensitive, const char *path,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void vadd(struct vstate *vs, const char *value, int sensitive, const char *path,
                 const char *fmt, ...)
{
    vs->count++;
    if (vs->count > AHL_API_MAX_VALIDATION_ERRORS)
        return;
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    int rc = 0;
    if (vs->msg.len)
        rc |= ahl_buf_adds(&vs->msg, "; ");
    if (!value)
        rc |= ahl_buf_addf(&vs->msg, "Value null at '%s' failed to satisfy constraint: %s", path,
                           why);
    else if (sensitive)
        rc |= ahl_buf_addf(&vs->msg, "Value at '%s' failed to satisfy constraint: %s", path, why);
    else {
        char shown[101];
        int cut = quote_excerpt(value, 100, shown, sizeof shown);
        rc |= ahl_buf_addf(&vs->msg, "Value '%s%s' at '%s' failed to satisfy constraint: %s", shown,
                           cut ? "..." : "", path, why);
    }
    if (rc)
        vs->nomem = 1;
}

static const char *type_word(enum ahl_model_type t)
{
    switch (t) {
    case AHL_MT_STRING:
        return "a string";
    case AHL_MT_INTEGER:
        return "an integer";
    case AHL_MT_REAL:
        return "a number";
    case AHL_MT_BOOLEAN:
        return "a boolean";
    case AHL_MT_TIMESTAMP:
        return "a timestamp (epoch seconds)";
    case AHL_MT_BLOB:
        return "a base64-encoded string";
    case AHL_MT_STRUCTURE:
        return "an object";
    case AHL_MT_LIST:
        return "a list";
    case AHL_MT_MAP:
        return "a map (JSON object)";
    }
    return "a value";
}

/* Renders a scalar for the "Value '...'" part of a message. */
static const char *render(const json_t *v, char *tmp, size_t n)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(tmp, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(tmp, n, "%.17g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(tmp, n, "true");
    else if (json_is_false(v))
        snprintf(tmp, n, "false");
    else if (json_is_object(v))
        snprintf(tmp, n, "{...}");
    else if (json_is_array(v))
        snprintf(tmp, n, "[...]");
    else
        snprintf(tmp, n, "null");
    return tmp;
}

/* Checks a string value against length, enum and pattern constraints. Writes the first violated
 * constraint (without the "Value ... at ..." prefix) into why and returns -1; 0 when it holds. */
static int check_string(const struct ahl_model_shape *s, int shape_id, const char *str, size_t n,
                        char *why, size_t whylen)
{
    long chars = utf8_chars(str, n);
    if (chars < 0) {
        snprintf(why, whylen, "Member must be valid UTF-8 text without NUL characters");
        return -1;
    }
    if ((s->flags & AHL_SHAPE_HAS_MIN) && chars < s->min) {
        snprintf(why, whylen, "Member must have length greater than or equal to %lld",
                 (long long)s->min);
        return -1;
    }
    if ((s->flags & AHL_SHAPE_HAS_MAX) && chars > s->max) {
        snprintf(why, whylen, "Member must have length less than or equal to %lld",
                 (long long)s->max);
        return -1;
    }
    if (s->n_enum) {
        size_t i;
        for (i = 0; i < s->n_enum; i++)
            if (strcmp(s->enum_values[i], str) == 0)
                break;
        if (i == s->n_enum) {
            size_t off = (size_t)snprintf(why, whylen, "Member must satisfy enum value set: [");
            for (i = 0; i < s->n_enum && off < whylen; i++)
                off += (size_t)snprintf(why + off, whylen - off, "%s%s", i ? ", " : "",
                                        s->enum_values[i]);
            if (off < whylen)
                snprintf(why + off, whylen - off, "]");
            return -1;
        }
    }
    if (s->pattern) {
        int ok = 1;
        if (s->forbidden_prefix &&
            strncmp(str, s->forbidden_prefix, strlen(s->forbidden_prefix)) == 0)
            ok = 0;
        if (ok && (s->flags & AHL_SHAPE_ASCII_ONLY)) {
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)str[i] > 0x7f)
                    ok = 0;
        }
        if (ok && s->regex) {
            pthread_once(&g_regex_once, compile_patterns);
            ok = g_simple[shape_id].usable ? ahl__api_simple_match(&g_simple[shape_id], str)
                                           : regexec(&g_regex[shape_id], str, 0, NULL, 0) == 0;
        }
        if (!ok) {
            snprintf(why, whylen, "Member must satisfy regular expression pattern: %s", s->pattern);
            return -1;
        }
    }
    return 0;
}

/* Checks the entry count of a list or map against the shape's bounds; reports a violation (the
 * value shown as `shown`) and returns -1, or returns 0. */
static int check_count(struct vstate *vs, const struct ahl_model_shape *s, size_t n,
                       const char *shown, int sensitive, const char *path)
{
    if ((s->flags & AHL_SHAPE_HAS_MIN) && (int64_t)n < s->min) {
        vadd(vs, shown, sensitive, path, "Member must have length greater than or equal to %lld",
             (long long)s->min);
        return -1;
    }
    if ((s->flags & AHL_SHAPE_HAS_MAX) && (int64_t)n > s->max) {
        vadd(vs, shown, sensitive, path, "Member must have length less than or equal to %lld",
             (long long)s->max);
        return -1;
    }
    return 0;
}

/* Validates a scalar or aggregate that is present (not NULL, not JSON null). Values inside a
 * sensitive shape (hide) are never echoed. */
static void validate_value(struct vstate *vs, enum ahl_shape_id id, const json_t *v,
                           const char *path, int hide)
{
    const struct ahl_model_shape *s = &ahl_model_shapes[id];
    int sensitive = hide || (s->flags & AHL_SHAPE_SENSITIVE) != 0;
    char tmp[64], why[768], child[512];

    switch (s->type) {
    case AHL_MT_STRING:
        if (!json_is_string(v)) {
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
            return;
        }
        if (check_string(s, id, json_string_value(v), json_string_length(v), why, sizeof why))
            vadd(vs, json_string_value(v), sensitive, path, "%s", why);
        return;
    case AHL_MT_BLOB: {
        if (!json_is_string(v)) {
            vadd(vs, render(v, tmp, sizeof tmp), 1, path, "Member must be %s", type_word(s->type));
            return;
        }
        struct ahl_buf dec;
        ahl_buf_init(&dec, (size_t)1 << 24);
        int rc = ahl_base64_decode(json_string_value(v), json_string_length(v), &dec);
        size_t n = dec.len;
        ahl_buf_release(&dec);
        if (rc < 0)
            vadd(vs, "", 1, path, "Member must be valid base64 (standard alphabet, padded)");
        else if ((s->flags & AHL_SHAPE_HAS_MIN) && (int64_t)n < s->min)
            vadd(vs, "", 1, path, "Member must have length greater than or equal to %lld",
                 (long long)s->min);
        else if ((s->flags & AHL_SHAPE_HAS_MAX) && (int64_t)n > s->max)
            vadd(vs, "", 1, path, "Member must have length less than or equal to %lld",
                 (long long)s->max);
        return;
    }
    case AHL_MT_INTEGER:
        if (!json_is_integer(v)) {
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
            return;
        }
        if ((s->flags & AHL_SHAPE_HAS_MIN) && json_integer_value(v) < s->min)
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path,
                 "Member must have value greater than or equal to %lld", (long long)s->min);
        else if ((s->flags & AHL_SHAPE_HAS_MAX) && json_integer_value(v) > s->max)
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path,
                 "Member must have value less than or equal to %lld", (long long)s->max);
        return;
    case AHL_MT_REAL:
    case AHL_MT_TIMESTAMP:
        if (!json_is_number(v) || (s->type == AHL_MT_TIMESTAMP && json_number_value(v) < 0))
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
        return;
    case AHL_MT_BOOLEAN:
        if (!json_is_boolean(v))
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
        return;
    case AHL_MT_STRUCTURE: {
        if (!json_is_object(v)) {
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
            return;
        }
        int set = 0;
        for (size_t i = 0; i < s->n_members; i++) {
            const struct ahl_model_member *m = &s->members[i];
            const json_t *mv = json_object_get(v, m->name);
            if (path[0])
                snprintf(child, sizeof child, "%s.%s", path, m->name);
            else
                ahl_str_copy_cut(child, sizeof child, m->name);
            if (!mv || json_is_null(mv)) {
                if (m->flags & AHL_MEMBER_REQUIRED)
                    vadd(vs, NULL, 0, child, "Member must not be null");
                continue;
            }
            set++;
            validate_value(vs, m->shape, mv, child, sensitive);
        }
        if ((s->flags & AHL_SHAPE_UNION) && set != 1)
            vadd(vs, render(v, tmp, sizeof tmp), 1, path[0] ? path : "body",
                 "Member must have exactly one of its members set (it has %d)", set);
        return;
    }
    case AHL_MT_LIST: {
        if (!json_is_array(v)) {
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
            return;
        }
        size_t n = json_array_size(v);
        if (check_count(vs, s, n, "[...]", sensitive, path) < 0)
            return;
        for (size_t i = 0; i < n && vs->count <= AHL_API_MAX_VALIDATION_ERRORS; i++) {
            const json_t *e = json_array_get(v, i);
            snprintf(child, sizeof child, "%s.%zu.member", path, i + 1);
            if (json_is_null(e))
                vadd(vs, NULL, 0, child, "Member must not be null");
            else
                validate_value(vs, s->element, e, child, sensitive);
        }
        return;
    }
    case AHL_MT_MAP: {
        if (!json_is_object(v)) {
            vadd(vs, render(v, tmp, sizeof tmp), sensitive, path, "Member must be %s",
                 type_word(s->type));
            return;
        }
        /* A map of the wrong size still has its entries checked, as AWS lists both. */
        (void)check_count(vs, s, json_object_size(v), "{...}", sensitive, path);
        const char *key;
        const json_t *mv;
        const struct ahl_model_shape *ks = &ahl_model_shapes[s->key];
        json_object_foreach((json_t *)v, key, mv)
        {
            if (vs->count > AHL_API_MAX_VALIDATION_ERRORS)
                break;
            if (ks->type == AHL_MT_STRING &&
                check_string(ks, s->key, key, strlen(key), why, sizeof why))
                vadd(vs, key, sensitive, path, "Map keys must satisfy constraint: [%s]", why);
            const struct ahl_model_shape *vsh = &ahl_model_shapes[s->value];
            if (json_is_null(mv)) {
                vadd(vs, NULL, 0, path, "Map value must not be null");
            } else if (vsh->type == AHL_MT_STRING) {
                if (!json_is_string(mv))
                    vadd(vs, render(mv, tmp, sizeof tmp), sensitive, path,
                         "Map value must satisfy constraint: [Member must be a string]");
                else if (check_string(vsh, s->value, json_string_value(mv), json_string_length(mv),
                                      why, sizeof why))
                    vadd(vs, json_string_value(mv), sensitive, path,
                         "Map value must satisfy constraint: [%s]", why);
            } else {
                snprintf(child, sizeof child, "%s.%s", path, key);
                validate_value(vs, s->value, mv, child, sensitive);
            }
        }
        return;
    }
    }
}

static int finish_validation(struct vstate *vs, struct ahl_err *err)
{
    int rc = 0;
    if (vs->nomem) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory while validating");
    } else if (vs->count) {
        rc = ahl_fail(err, AHL_EPARSE, "%d validation error%s detected: %s", vs->count,
                      vs->count == 1 ? "" : "s", vs->msg.data);
    }
    ahl_buf_release(&vs->msg);
    return rc;
}

int ahl_api_validate(enum ahl_shape_id shape, const json_t *value, const char *path,
                     struct ahl_err *err)
{
    struct vstate vs = {0};
    ahl_buf_init(&vs.msg, 8192);
    if (!value || json_is_null(value))
        vadd(&vs, NULL, 0, path, "Member must not be null");
    else
        validate_value(&vs, shape, value, path, 0);
    return finish_validation(&vs, err);
}

/* ---- decoding --------------------------------------------------------------------------- */

/* A decoded query string: pairs in arrival order. */
struct qpair {
    char *name;
    char *value;
};

struct qstring {
    struct qpair *pairs;
    size_t n;
};

#define MAX_QUERY_PAIRS 512
#define MAX_QUERY_PARAM 65536

static void qstring_release(struct qstring *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->pairs[i].name);
        free(q->pairs[i].value);
    }
    free(q->pairs);
    q->pairs = NULL;
    q->n = 0;
}

/* Percent-decodes one query parameter name or value into b (reset first). A NUL byte it decodes
 * to is refused: C strings would end there and the rest be dropped silently. */
static int query_decode_part(const char *p, size_t n, struct ahl_buf *b, struct ahl_err *err)
{
    ahl_buf_reset(b);
    int rc = ahl_percent_decode(p, n, b);
    if (rc == AHL_EPARSE)
        return ahl_fail(err, AHL_EPARSE, "The query string has a malformed percent-encoding");
    if (rc == AHL_ETOOBIG)
        return ahl_fail(err, AHL_EPARSE, "A query parameter is longer than %d bytes",
                        MAX_QUERY_PARAM);
    if (rc < 0)
        return ahl_fail(err, rc, "out of memory");
    if (memchr(b->data, '\0', b->len))
        return ahl_fail(err, AHL_EPARSE, "The query string holds a NUL character (%%00)");
    return 0;
}

static int qstring_parse(const char *query, struct qstring *q, struct ahl_err *err)
{
    int rc = 0;
    struct ahl_buf b;
    ahl_buf_init(&b, MAX_QUERY_PARAM);
    q->pairs = NULL;
    q->n = 0;
    if (!query || !*query)
        return 0;
    q->pairs = calloc(MAX_QUERY_PAIRS, sizeof *q->pairs);
    if (!q->pairs)
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            if (q->n == MAX_QUERY_PAIRS) {
                rc = ahl_fail(err, AHL_EPARSE, "The query string has more than %d parameters",
                              MAX_QUERY_PAIRS);
                goto out;
            }
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            if ((rc = query_decode_part(p, nlen, &b, err)) < 0)
                goto out;
            char *name = strdup(b.data);
            ahl_buf_reset(&b);
            if (eq && (rc = query_decode_part(eq + 1, len - nlen - 1, &b, err)) < 0) {
                free(name);
                goto out;
            }
            char *value = strdup(b.data);
            if (!name || !value) {
                free(name);
                free(value);
                rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
                goto out;
            }
            q->pairs[q->n].name = name;
            q->pairs[q->n].value = value;
            q->n++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
out:
    ahl_buf_release(&b);
    if (rc < 0)
        qstring_release(q);
    return rc;
}

/* Converts wire text (label, query value, header) to the JSON value of the member's type. A value
 * that is not of the type is reported and NULL returned; *bad is set. */
static json_t *text_to_json(struct vstate *vs, enum ahl_shape_id id, const char *text,
                            const char *path)
{
    const struct ahl_model_shape *s = &ahl_model_shapes[id];
    int sensitive = (s->flags & AHL_SHAPE_SENSITIVE) != 0;
    switch (s->type) {
    case AHL_MT_STRING:
    case AHL_MT_BLOB:
        if (utf8_chars(text, strlen(text)) < 0) {
            vadd(vs, "", 1, path, "Member must be valid UTF-8 text");
            return NULL;
        }
        return json_string(text);
    case AHL_MT_INTEGER: {
        char *end;
        if (!*text || !((*text >= '0' && *text <= '9') || *text == '-'))
            goto bad;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (*end || errno)
            goto bad;
        return json_integer(x);
    }
    case AHL_MT_BOOLEAN:
        if (!strcmp(text, "true"))
            return json_true();
        if (!strcmp(text, "false"))
            return json_false();
        goto bad;
    case AHL_MT_REAL:
    case AHL_MT_TIMESTAMP: {
        char *end;
        if (!*text)
            goto bad;
        double d = strtod(text, &end);
        if (*end)
            goto bad;
        return json_real(d);
    }
    default:
        break;
    }
bad:
    vadd(vs, text, sensitive, path, "Member must be %s", type_word(s->type));
    return NULL;
}

static int member_wanted_from_body(const struct ahl_model_shape *in)
{
    for (size_t i = 0; i < in->n_members; i++)
        if (in->members[i].loc == AHL_LOC_BODY)
            return 1;
    return 0;
}

int ahl_api_decode(enum ahl_op_id op, const struct ahl_api_http *http, json_t **input,
                   struct ahl_err *err)
{
    const struct ahl_model_op *o = &ahl_model_ops[op];
    const struct ahl_model_shape *in = &ahl_model_shapes[o->input];
    struct label_span labels[MAX_LABELS];
    struct qstring q = {0};
    struct vstate vs = {0};
    struct ahl_buf tmp;
    json_t *obj = NULL, *body = NULL;
    int rc = 0;

    ahl_buf_init(&vs.msg, 8192);
    ahl_buf_init(&tmp, 65536);
    *input = NULL;

    int nlabels = match_template(o->uri, http->path, labels);
    if (nlabels < 0) {
        rc = ahl_fail_detail(err, AHL_ENOTFOUND, AHL_API_FAIL_UNKNOWN_OPERATION,
                             "The path does not match the operation %s", o->name);
        goto out;
    }
    if ((rc = qstring_parse(http->query, &q, err)) < 0)
        goto out;

    if (member_wanted_from_body(in)) {
        if (http->body_len > AHL_API_MAX_BODY) {
            rc = ahl_fail(err, AHL_ETOOBIG, "The request body is larger than the limit of %u bytes",
                          AHL_API_MAX_BODY);
            goto out;
        }
        if (http->body_len == 0) {
            body = json_object();
        } else {
            json_error_t jerr;
            body = json_loadb(http->body, http->body_len, JSON_REJECT_DUPLICATES, &jerr);
            if (!body) {
                /* jansson quotes the bytes near the error, which may be anything. */
                char why[JSON_ERROR_TEXT_LENGTH];
                quote_excerpt(jerr.text, sizeof why - 1, why, sizeof why);
                rc = ahl_fail(err, AHL_EPARSE,
                              "The request body is not valid JSON: %s (line %d, column %d)", why,
                              jerr.line, jerr.column);
                goto out;
            }
            if (!json_is_object(body)) {
                rc = ahl_fail(err, AHL_EPARSE, "The request body must be a JSON object");
                goto out;
            }
        }
        if (!body) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
    }

    obj = json_object();
    if (!obj) {
        rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < in->n_members; i++) {
        const struct ahl_model_member *m = &in->members[i];
        const struct ahl_model_shape *ms = &ahl_model_shapes[m->shape];
        json_t *v = NULL;
        switch (m->loc) {
        case AHL_LOC_URI:
            for (int k = 0; k < nlabels; k++) {
                if (labels[k].name_len != strlen(m->location_name) ||
                    memcmp(labels[k].name, m->location_name, labels[k].name_len) != 0)
                    continue;
                ahl_buf_reset(&tmp);
                if (ahl_percent_decode(labels[k].value, labels[k].value_len, &tmp) < 0) {
                    vadd(&vs, "", 0, m->name, "Member must be correctly percent-encoded");
                    break;
                }
                if (memchr(tmp.data, '\0', tmp.len)) {
                    vadd(&vs, "", 1, m->name, "Member must not contain a NUL character (%%00)");
                    break;
                }
                v = text_to_json(&vs, m->shape, tmp.data, m->name);
            }
            break;
        case AHL_LOC_QUERY:
            if (ms->type == AHL_MT_LIST) {
                /* The wire cannot tell an empty list from an absent one (botocore sends nothing
                 * for tagKeys=[]), so a required query list that is absent is empty. */
                if ((m->flags & AHL_MEMBER_REQUIRED) && !(v = json_array()))
                    break;
                for (size_t k = 0; k < q.n; k++) {
                    if (strcmp(q.pairs[k].name, m->location_name) != 0)
                        continue;
                    if (!v && !(v = json_array()))
                        break;
                    json_t *e = text_to_json(&vs, ms->element, q.pairs[k].value, m->name);
                    if (e)
                        json_array_append_new(v, e);
                }
            } else {
                for (size_t k = 0; k < q.n; k++) {
                    if (strcmp(q.pairs[k].name, m->location_name) == 0) {
                        v = text_to_json(&vs, m->shape, q.pairs[k].value, m->name);
                        break;
                    }
                }
            }
            break;
        case AHL_LOC_HEADER: {
            const char *h = http->header ? http->header(http->header_ctx, m->location_name) : NULL;
            if (h)
                v = text_to_json(&vs, m->shape, h, m->name);
            break;
        }
        case AHL_LOC_BODY:
            if (m->flags & AHL_MEMBER_PAYLOAD) {
                v = json_incref(body);
            } else {
                v = json_incref(json_object_get(body, m->name));
            }
            break;
        }
        if (v && json_object_set_new(obj, m->name, v) < 0) {
            rc = ahl_fail(err, AHL_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (vs.count == 0)
        validate_value(&vs, o->input, obj, "", 0);
    rc = finish_validation(&vs, err);
    if (rc == 0) {
        *input = obj;
        obj = NULL;
    }
out:
    ahl_buf_release(&vs.msg);
    ahl_buf_release(&tmp);
    qstring_release(&q);
    json_decref(body);
    json_decref(obj);
    return rc;
}

/* ---- errors and outputs ----------------------------------------------------------------- */

const char *ahl_api_error_type(const struct ahl_err *err)
{
    switch (err->code) {
    case AHL_EINVAL:
    case AHL_EPARSE:
    case AHL_ETOOBIG:
    case AHL_EUNSUPPORTED:
        return AHL_AWS_VALIDATION;
    case AHL_ENOTFOUND:
        return err->detail == AHL_API_FAIL_UNKNOWN_OPERATION ? AHL_AWS_UNKNOWN_OPERATION
                                                             : AHL_AWS_NOT_FOUND;
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

const char *ahl_api_auth_error_type(const struct ahl_err *err)
{
    switch (err->detail) {
    case AHL_SIGV4_FAIL_MISSING:
        return AHL_AWS_MISSING_TOKEN;
    case AHL_SIGV4_FAIL_INCOMPLETE:
        return AHL_AWS_INCOMPLETE_SIGNATURE;
    case AHL_SIGV4_FAIL_UNRECOGNIZED:
        return AHL_AWS_UNRECOGNIZED_CLIENT;
    case AHL_SIGV4_FAIL_INVALID:
        return AHL_AWS_INVALID_SIGNATURE;
    default:
        return AHL_AWS_INTERNAL;
    }
}

int ahl_api_error_status(const char *aws_type)
{
    for (const struct ahl_model_error *e = ahl_model_errors; e->name; e++)
        if (strcmp(e->name, aws_type) == 0)
            return e->status;
    if (!strcmp(aws_type, AHL_AWS_UNKNOWN_OPERATION))
        return 404;
    if (!strcmp(aws_type, AHL_AWS_UNAUTHORIZED))
        return 401;
    if (!strcmp(aws_type, AHL_AWS_INVALID_SIGNATURE) ||
        !strcmp(aws_type, AHL_AWS_UNRECOGNIZED_CLIENT) ||
        !strcmp(aws_type, AHL_AWS_MISSING_TOKEN) || !strcmp(aws_type, "SignatureDoesNotMatch"))
        return 403;
    return 400;
}

int ahl_api_error_body(const char *aws_type, const char *message, struct ahl_buf *out)
{
    /* The last line of defence for messages made below this layer (SigV4, the engine) that quote
     * request bytes: the body must be UTF-8 for the SDKs to parse it. */
    size_t n = strlen(message);
    char *clean = NULL;
    if (!ahl_utf8_valid(message, n)) {
        if (!(clean = malloc(n + 1)))
            return AHL_ENOMEM;
        quote_excerpt(message, n, clean, n + 1); /* one '?' per bad byte: never longer */
        message = clean;
    }
    int rc = ahl_buf_adds(out, "{\"__type\":");
    if (rc == 0)
        rc = ahl_json_write_string(aws_type, strlen(aws_type), out);
    if (rc == 0)
        rc = ahl_buf_adds(out, ",\"message\":");
    if (rc == 0)
        rc = ahl_json_write_string(message, strlen(message), out);
    if (rc == 0)
        rc = ahl_buf_addc(out, '}');
    free(clean);
    return rc;
}

json_t *ahl_api_timestamp(int64_t ms)
{
    return json_real((double)ms / 1000.0);
}

int64_t ahl_api_timestamp_ms(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v) * 1000;
    if (json_is_real(v)) {
        double d = json_real_value(v) * 1000.0;
        return (int64_t)(d < 0 ? d - 0.5 : d + 0.5);
    }
    return 0;
}

const char *ahl_api_str(const json_t *input, const char *member)
{
    return json_string_value(json_object_get(input, member));
}

int ahl_api_bool(const json_t *input, const char *member, int dflt)
{
    const json_t *v = json_object_get(input, member);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int64_t ahl_api_int(const json_t *input, const char *member, int64_t dflt)
{
    const json_t *v = json_object_get(input, member);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}
