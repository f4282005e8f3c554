/* The per-attribute rules of UpdateImageSetMetadata (see rules.h for the decisions): resolving a
 * key to a tag, the level and force checks, and one checker per DICOM VR. Everything here is a
 * pure function of its arguments; the dictionary and level table are read-only process data. */
#include "meta/rules.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/codec.h"
#include "dicom/dict.h"
#include "base/banned.h"

/* What a key names: a dictionary attribute, a private element, or an unknown public tag. */
enum key_kind {
    KEY_PUBLIC,  /* in the dictionary, given by keyword (or hex of a repeating-group member) */
    KEY_PRIVATE, /* odd group, 8 hex digits */
    KEY_UNKNOWN, /* even group, 8 hex digits, not in the dictionary */
};

struct key_info {
    enum key_kind kind;
    uint32_t tag;
    const struct ahl_dict_entry *entry; /* NULL for KEY_UNKNOWN and most private tags */
};

static const char *const generated_keys[] = {
    "SchemaVersion",
    "DatastoreID",
    "ImageSetID",
    "PixelData",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "ImageFrames",
    "BulkData",
    "Checksum",
    "ChecksumType",
    "PixelDataChecksumFromBaseToFullResolution",
    "Width",
    "Height",
    "MinPixelValue",
    "MaxPixelValue",
    "FrameSizeInBytes",
    "StoredTransferSyntaxUID",
};

bool ahl_rules_is_generated(const char *key)
{
    if (!key)
        return false;
    for (size_t i = 0; i < sizeof generated_keys / sizeof generated_keys[0]; i++)
        if (strcmp(key, generated_keys[i]) == 0)
            return true;
    return false;
}

/* ---- small text helpers ---------------------------------------------------------------- */

static bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool parse_hex_key(const char *key, uint32_t *tag)
{
    uint32_t t = 0;
    for (int i = 0; i < 8; i++) {
        char c = key[i];
        if (!is_upper_hex(c))
            return false;
        t = t << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'A' + 10);
    }
    if (key[8] != '\0')
        return false;
    *tag = t;
    return true;
}

/* Odd groups are private, except the groups PS3.5 §7.8.1 reserves (0001, 0003, 0005, 0007,
 * FFFF), which are not valid at all and are treated as unknown. */
static bool tag_is_private(uint32_t tag)
{
    uint16_t g = (uint16_t)(tag >> 16);
    return (g & 1) && g != 0x0001 && g != 0x0003 && g != 0x0005 && g != 0x0007 && g != 0xFFFF;
}

static const char *const all_vrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL",
                                      "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
                                      "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
                                      "UI", "UL", "UN", "UR", "US", "UT", "UV"};

bool ahl_rules_is_vr(const char *vr)
{
    if (!vr)
        return false;
    for (size_t i = 0; i < sizeof all_vrs / sizeof all_vrs[0]; i++)
        if (strcmp(vr, all_vrs[i]) == 0)
            return true;
    return false;
}

/* VRs whose string values use the backslash as the value delimiter (PS3.5 §6.4). */
static bool vr_backslash_delimits(const char *vr)
{
    static const char *const list[] = {"AE", "AS", "CS", "DA", "DS", "DT", "IS",
                                       "LO", "PN", "SH", "TM", "UC", "UI"};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (strcmp(vr, list[i]) == 0)
            return true;
    return false;
}

static bool vr_is_text(const char *vr)
{
    return vr_backslash_delimits(vr) || strcmp(vr, "ST") == 0 || strcmp(vr, "LT") == 0 ||
           strcmp(vr, "UT") == 0 || strcmp(vr, "UR") == 0 || strcmp(vr, "AT") == 0;
}

/* Length of s without trailing padding characters (space, and NUL for UI). */
static size_t rtrim_len(const char *s, size_t n, bool nul_too)
{
    while (n > 0 && (s[n - 1] == ' ' || (nul_too && s[n - 1] == '\0')))
        n--;
    return n;
}

static size_t skip_spaces(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == ' ')
        i++;
    return i;
}

/* Number of UTF-8 characters (jansson strings are valid UTF-8). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Control characters a text VR may hold: none for the short strings (ESC only, for ISO 2022
 * escapes), CR LF FF TAB ESC for the long texts (PS3.5 §6.1.3). */
static bool text_chars_ok(const char *s, size_t n, bool long_text, bool ascii_only)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            if (ascii_only)
                return false;
            continue;
        }
        if (c == 0x7F)
            return false;
        if (c >= 0x20 || c == 0x1B)
            continue;
        if (long_text && (c == '\r' || c == '\n' || c == '\f' || c == '\t'))
            continue;
        return false;
    }
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_ymd(int y, int m, int d)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1)
        return false;
    int max = days[m - 1] + (m == 2 && leap_year(y) ? 1 : 0);
    return d <= max;
}

/* HH[MM[SS[.F{1,6}]]], used by TM and the time part of DT. */
static bool valid_time(const char *s, size_t n)
{
    if (n < 2 || !all_digits(s, 2) || num2(s) > 23)
        return false;
    if (n == 2)
        return true;
    if (n < 4 || !all_digits(s + 2, 2) || num2(s + 2) > 59)
        return false;
    if (n == 4)
        return true;
    if (n < 6 || !all_digits(s + 4, 2) || num2(s + 4) > 60) /* 60: leap second */
        return false;
    if (n == 6)
        return true;
    if (s[6] != '.' || n < 8 || n > 13 || !all_digits(s + 7, n - 7))
        return false;
    return true;
}

/* ---- VR checkers -------------------------------------------------------------------------
 * Each returns NULL when the string value s (length n, as jansson holds it) fits, else a short
 * description of what the VR expects, used as "VR XX expects <description>". */

static const char *check_da(const char *s, size_t n)
{
    n = rtrim_len(s, n, false);
    if (n != 8 || !all_digits(s, 8))
        return "a date YYYYMMDD";
    int y = num2(s) * 100 + num2(s + 2);
    if (!valid_ymd(y, num2(s + 4), num2(s + 6)))
        return "a valid calendar date YYYYMMDD";
    return NULL;
}

static const char *check_tm(const char *s, size_t n)
{
    n = rtrim_len(s, n, false);
    if (n > 14 || !valid_time(s, n))
        return "a time HH[MM[SS[.FFFFFF]]]";
    return NULL;
}

static const char *check_dt(const char *s, size_t n)
{
    static const char *want = "a date-time YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][&ZZXX]";
    n = rtrim_len(s, n, false);
    if (n > 26)
        return want;
    size_t end = n;
    for (size_t i = 4; i < n; i++) {
        if (s[i] == '+' || s[i] == '-') {
            end = i;
            break;
        }
    }
    if (end != n) {
        const char *z = s + end + 1;
        if (n - end != 5 || !all_digits(z, 4) || num2(z) > 14 || num2(z + 2) > 59)
            return want;
    }
    if (end < 4 || !all_digits(s, 4))
        return want;
    int y = num2(s) * 100 + num2(s + 2);
    if (end == 4)
        return NULL;
    if (end < 6 || !all_digits(s + 4, 2) || num2(s + 4) < 1 || num2(s + 4) > 12)
        return want;
    if (end == 6)
        return NULL;
    if (end < 8 || !all_digits(s + 6, 2) || !valid_ymd(y, num2(s + 4), num2(s + 6)))
        return want;
    if (end == 8)
        return NULL;
    return valid_time(s + 8, end - 8) ? NULL : want;
}

static const char *check_is(const char *s, size_t n)
{
    static const char *want = "an integer string (at most 12 characters, -2^31..2^31-1)";
    n = rtrim_len(s, n, false);
    if (n > 12)
        return want;
    size_t i = skip_spaces(s, n);
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i == n || !all_digits(s + i, n - i))
        return want;
    char tmp[16];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    long long v = strtoll(tmp, NULL, 10);
    if (v < INT32_MIN || v > INT32_MAX)
        return want;
    return NULL;
}

static const char *check_ds(const char *s, size_t n)
{
    static const char *want = "a decimal string (at most 16 characters)";
    n = rtrim_len(s, n, false);
    if (n > 16)
        return want;
    size_t i = skip_spaces(s, n);
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t digits = 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return want;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < n && isdigit((unsigned char)s[i]))
            i++, ed++;
        if (ed == 0)
            return want;
    }
    if (i != n)
        return want;
    char tmp[20];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!isfinite(strtod(tmp, NULL)))
        return "a finite decimal string";
    return NULL;
}

static const char *check_ui(const char *s, size_t n)
{
    static const char *want =
        "a UID: at most 64 characters, digits and dots, no empty or zero-led components";
    n = rtrim_len(s, n, true);
    if (n == 0 || n > 64)
        return want;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0 || (len > 1 && s[start] == '0'))
                return want;
            start = i + 1;
        } else if (s[i] < '0' || s[i] > '9') {
            return want;
        }
    }
    return NULL;
}

static const char *check_pn(const char *s, size_t n)
{
    static const char *want = "a person name: at most 3 '='-separated groups of at most 5 "
                              "'^'-separated components and 64 characters each";
    n = rtrim_len(s, n, false);
    if (!text_chars_ok(s, n, false, false))
        return want;
    size_t groups = 1, comps = 1, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '=') {
            if (utf8_chars(s + start, i - start) > 64 || comps > 5)
                return want;
            if (i < n && ++groups > 3)
                return want;
            comps = 1;
            start = i + 1;
        } else if (s[i] == '^') {
            comps++;
        }
    }
    return NULL;
}

static const char *check_cs(const char *s, size_t n)
{
    n = rtrim_len(s, n, false);
    if (n > 16)
        return "a code string of at most 16 characters";
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '_'))
            return "a code string of upper-case letters, digits, space and '_'";
    }
    return NULL;
}

static const char *check_as(const char *s, size_t n)
{
    n = rtrim_len(s, n, false);
    if (n != 4 || !all_digits(s, 3) || !strchr("DWMY", s[3]) || s[3] == '\0')
        return "an age string nnnD, nnnW, nnnM or nnnY";
    return NULL;
}

static const char *check_ae(const char *s, size_t n)
{
    n = rtrim_len(s, n, false);
    if (n > 16 || !text_chars_ok(s, n, false, true) || memchr(s, 0x1B, n))
        return "an application entity title of at most 16 printable ASCII characters";
    return NULL;
}

/* SH, LO, UC: limited strings without control characters (ESC allowed). */
static const char *check_string(const char *s, size_t n, size_t max_chars, const char *want)
{
    n = rtrim_len(s, n, false);
    if ((max_chars && utf8_chars(s, n) > max_chars) || !text_chars_ok(s, n, false, false))
        return want;
    return NULL;
}

/* ST, LT, UT: texts that may hold CR LF FF TAB. */
static const char *check_text(const char *s, size_t n, size_t max_chars, const char *want)
{
    n = rtrim_len(s, n, false);
    if ((max_chars && utf8_chars(s, n) > max_chars) || !text_chars_ok(s, n, true, false))
        return want;
    return NULL;
}

static const char *check_ur(const char *s, size_t n)
{
    n = rtrim_len(s, n, false);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7F || c == '\\')
            return "a URI without spaces or backslashes";
    }
    return NULL;
}

static const char *check_at(const char *s, size_t n)
{
    if (n != 8)
        return "a tag as 8 hex digits";
    for (size_t i = 0; i < 8; i++)
        if (!isxdigit((unsigned char)s[i]))
            return "a tag as 8 hex digits";
    return NULL;
}

static const char *check_binary(const char *vr, const char *s, size_t n)
{
    size_t unit = 1;
    if (strcmp(vr, "OW") == 0)
        unit = 2;
    else if (strcmp(vr, "OF") == 0 || strcmp(vr, "OL") == 0)
        unit = 4;
    else if (strcmp(vr, "OD") == 0 || strcmp(vr, "OV") == 0)
        unit = 8;
    struct ahl_buf b;
    ahl_buf_init(&b, n);
    int rc = ahl_base64_decode(s, n, &b);
    size_t len = b.len;
    ahl_buf_release(&b);
    if (rc < 0)
        return "base64 text (standard alphabet, padded)";
    if (len % unit != 0) {
        switch (unit) {
        case 2:
            return "base64 of a whole number of 2-byte words";
        case 4:
            return "base64 of a whole number of 4-byte words";
        default:
            return "base64 of a whole number of 8-byte words";
        }
    }
    return NULL;
}

static const char *check_string_vr(const char *vr, const char *s, size_t n)
{
    if (vr_backslash_delimits(vr) && memchr(s, '\\', n))
        return "a single value (a backslash separates values)";
    if (strcmp(vr, "DA") == 0)
        return check_da(s, n);
    if (strcmp(vr, "TM") == 0)
        return check_tm(s, n);
    if (strcmp(vr, "DT") == 0)
        return check_dt(s, n);
    if (strcmp(vr, "IS") == 0)
        return check_is(s, n);
    if (strcmp(vr, "DS") == 0)
        return check_ds(s, n);
    if (strcmp(vr, "UI") == 0)
        return check_ui(s, n);
    if (strcmp(vr, "PN") == 0)
        return check_pn(s, n);
    if (strcmp(vr, "CS") == 0)
        return check_cs(s, n);
    if (strcmp(vr, "AS") == 0)
        return check_as(s, n);
    if (strcmp(vr, "AE") == 0)
        return check_ae(s, n);
    if (strcmp(vr, "SH") == 0)
        return check_string(s, n, 16, "a short string of at most 16 characters");
    if (strcmp(vr, "LO") == 0)
        return check_string(s, n, 64, "a long string of at most 64 characters");
    if (strcmp(vr, "UC") == 0)
        return check_string(s, n, 0, "a string without control characters");
    if (strcmp(vr, "ST") == 0)
        return check_text(s, n, 1024, "a text of at most 1024 characters");
    if (strcmp(vr, "LT") == 0)
        return check_text(s, n, 10240, "a text of at most 10240 characters");
    if (strcmp(vr, "UT") == 0)
        return check_text(s, n, 0, "a text without control characters other than CR LF FF TAB");
    if (strcmp(vr, "UR") == 0)
        return check_ur(s, n);
    if (strcmp(vr, "AT") == 0)
        return check_at(s, n);
    return check_binary(vr, s, n);
}

static const char *check_number_vr(const char *vr, const json_t *v)
{
    static const struct {
        const char *vr;
        long long lo, hi;
        const char *want;
    } ints[] = {
        {"US", 0, 65535, "an integer 0..65535"},
        {"SS", -32768, 32767, "an integer -32768..32767"},
        {"UL", 0, 4294967295LL, "an integer 0..4294967295"},
        {"SL", INT32_MIN, INT32_MAX, "an integer -2147483648..2147483647"},
        {"UV", 0, INT64_MAX, "a non-negative integer"},
        {"SV", INT64_MIN, INT64_MAX, "an integer"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(vr, ints[i].vr) != 0)
            continue;
        if (!json_is_integer(v))
            return ints[i].want;
        long long x = json_integer_value(v);
        return x < ints[i].lo || x > ints[i].hi ? ints[i].want : NULL;
    }
    if (!json_is_number(v))
        return "a JSON number";
    double d = json_number_value(v);
    if (!isfinite(d) || (strcmp(vr, "FL") == 0 && fabs(d) > FLT_MAX))
        return strcmp(vr, "FL") == 0 ? "a number in single-precision range" : "a finite number";
    return NULL;
}

static bool vr_is_number(const char *vr)
{
    static const char *const list[] = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (strcmp(vr, list[i]) == 0)
            return true;
    return false;
}

const char *ahl_rules_vr_problem(const char *vr, const json_t *v)
{
    if (json_is_null(v))
        return NULL;
    if (strcmp(vr, "SQ") == 0)
        return json_is_array(v) ? NULL : "an array of item objects";
    if (vr_is_number(vr)) {
        const char *why = check_number_vr(vr, v);
        return why;
    }
    if (!json_is_string(v)) {
        if (vr_is_text(vr))
            return "a JSON string";
        return "a base64 string";
    }
    return check_string_vr(vr, json_string_value(v), json_string_length(v));
}

/* ---- key resolution and the rules ---------------------------------------------------------- */

static const char *level_name(enum ahl_level level)
{
    return ahl_level_name(level);
}

static int resolve_key(const char *path, const char *key, struct key_info *ki, struct ahl_err *err)
{
    memset(ki, 0, sizeof *ki);
    const struct ahl_dict_entry *e = ahl_dict_by_keyword(key);
    /* Entries resolved by rule (mask 0: PrivateCreator, group lengths) name ranges of tags, not
     * one attribute, so their keywords cannot address anything. */
    if (e && e->mask == 0)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: names a range of tags, not one attribute; write the tag as 8 "
                        "upper-case hex digits",
                        path, key);
    if (e) {
        if (e->vr[0] == '\0')
            return ahl_fail(err, AHL_EINVAL, "%s.%s: item and delimiter tags are not attributes",
                            path, key);
        ki->kind = KEY_PUBLIC;
        ki->tag = e->tag;
        ki->entry = e;
        return 0;
    }
    uint32_t tag;
    if (!parse_hex_key(key, &tag))
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: unknown attribute: not a DICOM keyword and not a tag written as 8 "
                        "upper-case hex digits",
                        path, key);
    ki->tag = tag;
    if (tag_is_private(tag)) {
        ki->kind = KEY_PRIVATE;
        ki->entry = ahl_dict_by_tag(tag); /* private creators resolve to LO */
        return 0;
    }
    e = ahl_dict_by_tag(tag);
    if (!e) {
        ki->kind = KEY_UNKNOWN;
        return 0;
    }
    /* A public tag with a keyword must be written as the keyword, as the document holds it;
     * the hex form would create a second key for the same attribute. Members of repeating groups
     * other than the first (overlay group 6002, ...) have no keyword of their own and keep hex. */
    if (e->mask == 0xFFFFFFFFu || tag == e->tag)
        return ahl_fail(err, AHL_EINVAL, "%s.%s: write this attribute by its keyword %s", path, key,
                        e->keyword);
    if (e->vr[0] == '\0')
        return ahl_fail(err, AHL_EINVAL, "%s.%s: item and delimiter tags are not attributes", path,
                        key);
    ki->kind = KEY_PUBLIC;
    ki->entry = e;
    return 0;
}

static bool is_identity_uid(const char *key)
{
    return strcmp(key, "StudyInstanceUID") == 0 || strcmp(key, "SeriesInstanceUID") == 0 ||
           strcmp(key, "SOPInstanceUID") == 0;
}

/* Restating the current value: strings compare without their trailing padding, so "5 " restates
 * "5"; anything else compares as JSON. */
static bool same_value(const json_t *a, const json_t *b)
{
    if (json_is_string(a) && json_is_string(b)) {
        size_t na = rtrim_len(json_string_value(a), json_string_length(a), true);
        size_t nb = rtrim_len(json_string_value(b), json_string_length(b), true);
        return na == nb && memcmp(json_string_value(a), json_string_value(b), na) == 0;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* Whether force applies: under --aws-primary-rules it does not on a primary image set. */
static bool force_applies(const struct ahl_rules_opts *opts)
{
    return opts && opts->force && !(opts->aws_primary_rules && opts->is_primary);
}

static const char *force_hint(const struct ahl_rules_opts *opts)
{
    if (opts && opts->force && opts->aws_primary_rules && opts->is_primary)
        return " (force does not apply to a primary image set)";
    return "";
}

/* The checks common to set and remove: generated keys, key resolution, level, primary-set
 * restrictions, and the attributes that only force unlocks. */
static int check_common(enum ahl_level level, const char *path, const char *key, bool removing,
                        const struct ahl_rules_opts *opts, struct key_info *ki, struct ahl_err *err)
{
    const char *verb = removing ? "removed" : "updated";
    if (!path)
        path = "";
    if (!key || !*key)
        return ahl_fail(err, AHL_EINVAL, "%s: empty attribute name", path);
    if (ahl_rules_is_generated(key))
        return ahl_fail(err, AHL_EINVAL, "%s.%s: generated by the service and can never be %s",
                        path, key, verb);
    int rc = resolve_key(path, key, ki, err);
    if (rc < 0)
        return rc;
    if ((ki->tag & 0xFFFF) == 0)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: group lengths describe an encoding and can never be %s", path, key,
                        verb);

    enum ahl_level want = ki->kind == KEY_PUBLIC ? ahl_level_of_tag(ki->tag) : AHL_LEVEL_INSTANCE;
    if (want != level)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: %s attribute belongs to the %s level, not the %s level", path, key,
                        ki->kind == KEY_PUBLIC ? "this" : "a private or unknown", level_name(want),
                        level_name(level));
    if (opts && opts->aws_primary_rules && opts->is_primary &&
        (level == AHL_LEVEL_PATIENT || level == AHL_LEVEL_SERIES))
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: %s-level attributes cannot be %s on a primary image set", path, key,
                        level_name(level), verb);

    bool force = force_applies(opts);
    if (ki->kind == KEY_PRIVATE && !force)
        return ahl_fail(err, AHL_EINVAL, "%s.%s: private attributes can only be %s with force%s",
                        path, key, verb, force_hint(opts));
    if (ki->kind == KEY_UNKNOWN && !force)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: not a valid attribute of the DICOM standard; it can only be %s "
                        "with force%s",
                        path, key, verb, force_hint(opts));
    if (ki->kind == KEY_PUBLIC && (ki->tag >> 16) == 0x0002 && !force)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: file meta information (group 0002) can only be %s with force%s",
                        path, key, verb, force_hint(opts));
    return 0;
}

/* The VR to check a value against: the dictionary's for public attributes (DICOMVRs may choose
 * among the alternatives it allows), DICOMVRs for private and unknown ones. *vr is NULL when no
 * VR is known. Writes up to 3 VRs (primary + alternatives) into vrs_out. */
static int pick_vrs(const char *path, const char *key, const struct key_info *ki, const json_t *vrs,
                    bool force, char vrs_out[4][3], int *nvr, struct ahl_err *err)
{
    *nvr = 0;
    const json_t *given = vrs && json_is_object(vrs) ? json_object_get(vrs, key) : NULL;
    const char *gvr = NULL;
    if (given) {
        gvr = json_string_value(given);
        if (!gvr || !ahl_rules_is_vr(gvr))
            return ahl_fail(err, AHL_EINVAL,
                            "%s.%s: DICOMVRs gives %s for this attribute, which is not a DICOM VR",
                            path, key, gvr ? gvr : "a non-string");
    }
    const struct ahl_dict_entry *e = ki->entry;
    if (ki->kind == KEY_PRIVATE && e && strcmp(e->keyword, "PrivateCreator") != 0)
        e = NULL;
    if (e) {
        int n = 0;
        memcpy(vrs_out[n++], e->vr, 3);
        for (size_t i = 0; i + 1 < sizeof e->vr_alt && e->vr_alt[i] && n < 4; i += 2) {
            vrs_out[n][0] = e->vr_alt[i];
            vrs_out[n][1] = e->vr_alt[i + 1];
            vrs_out[n][2] = '\0';
            n++;
        }
        if (gvr) {
            for (int i = 0; i < n; i++) {
                if (strcmp(vrs_out[i], gvr) == 0) {
                    memcpy(vrs_out[0], gvr, 3);
                    *nvr = 1;
                    return 0;
                }
            }
            if (!force)
                return ahl_fail(err, AHL_EINVAL,
                                "%s.%s: DICOMVRs gives %s but the dictionary says %s", path, key,
                                gvr, e->vr);
            memcpy(vrs_out[0], gvr, 3);
            *nvr = 1;
            return 0;
        }
        *nvr = n;
        return 0;
    }
    if (gvr) {
        memcpy(vrs_out[0], gvr, 3);
        *nvr = 1;
        return 0;
    }
    if (!force)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: no VR known for this attribute; give one in DICOMVRs", path, key);
    return 0;
}

/* Structural check of a sequence value under force: an array of item objects whose values are
 * scalars, arrays of scalars or nested sequences, at most AHL_RULES_MAX_SQ_DEPTH deep. Recursion
 * is bounded by that depth. */
static int check_sequence_shape(const char *path, const char *key, const json_t *v, int depth,
                                struct ahl_err *err)
{
    if (depth > AHL_RULES_MAX_SQ_DEPTH)
        return ahl_fail(err, AHL_EINVAL, "%s.%s: sequences nest deeper than %d levels", path, key,
                        AHL_RULES_MAX_SQ_DEPTH);
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_object(item))
            return ahl_fail(err, AHL_EINVAL, "%s.%s[%zu]: a sequence item must be a JSON object",
                            path, key, i);
        const char *k;
        const json_t *x;
        json_object_foreach((json_t *)item, k, x)
        {
            if (json_is_object(x) || json_is_boolean(x))
                return ahl_fail(err, AHL_EINVAL, "%s.%s[%zu].%s: not a DICOM value", path, key, i,
                                k);
            if (!json_is_array(x))
                continue;
            size_t j;
            const json_t *y;
            bool objects = false, scalars = false;
            json_array_foreach(x, j, y)
            {
                if (json_is_object(y))
                    objects = true;
                else if (json_is_array(y) || json_is_boolean(y))
                    return ahl_fail(err, AHL_EINVAL, "%s.%s[%zu].%s[%zu]: not a DICOM value", path,
                                    key, i, k, j);
                else
                    scalars = true;
            }
            if (objects && scalars)
                return ahl_fail(err, AHL_EINVAL, "%s.%s[%zu].%s: mixes items and values", path, key,
                                i, k);
            if (objects) {
                char sub[256];
                snprintf(sub, sizeof sub, "%s[%zu]", key, i);
                int rc = check_sequence_shape(path, sub, x, depth + 1, err);
                if (rc < 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* Does the value fit one of the VRs? Returns the first VR's problem when none fits. */
static const char *fits_any(char vrs[4][3], int nvr, const json_t *v)
{
    const char *first = NULL;
    for (int i = 0; i < nvr; i++) {
        const char *why = ahl_rules_vr_problem(vrs[i], v);
        if (!why)
            return NULL;
        if (!first)
            first = why;
    }
    return first;
}

static bool any_backslash_vr(char vrs[4][3], int nvr)
{
    for (int i = 0; i < nvr; i++)
        if (vr_backslash_delimits(vrs[i]))
            return true;
    return false;
}

int ahl_rules_check_set(enum ahl_level level, const char *path, const char *key,
                        const json_t *value, const json_t *vrs, const json_t *current,
                        const struct ahl_rules_opts *opts, struct ahl_err *err)
{
    struct key_info ki;
    if (!path)
        path = "";
    int rc = check_common(level, path, key, false, opts, &ki, err);
    if (rc < 0)
        return rc;
    if (!value)
        return ahl_fail(err, AHL_EINVAL, "%s.%s: missing value", path, key);
    bool force = force_applies(opts);

    /* Identity attributes: the same value is a no-op; a change needs force; a forced UID change
     * must still be a valid UID, because the engine re-keys the node by it. */
    bool identity = is_identity_uid(key);
    if (identity || strcmp(key, "StudyID") == 0) {
        if (current && same_value(value, current))
            return 0;
        if (!force)
            return ahl_fail(err, AHL_EINVAL, "%s.%s: changing %s needs force%s", path, key, key,
                            force_hint(opts));
        if (identity) {
            const char *why =
                json_is_string(value) ? ahl_rules_vr_problem("UI", value) : "a JSON string";
            if (why)
                return ahl_fail(err, AHL_EINVAL, "%s.%s: VR UI expects %s", path, key, why);
            return 0;
        }
    }

    if (json_is_boolean(value) || json_is_object(value))
        return ahl_fail(err, AHL_EINVAL, "%s.%s: a JSON %s is not a DICOM value", path, key,
                        json_is_object(value) ? "object (sequences are arrays of objects)"
                                              : "boolean");

    char vr_list[4][3];
    int nvr = 0;
    rc = pick_vrs(path, key, &ki, vrs, force, vr_list, &nvr, err);
    if (rc < 0)
        return rc;
    bool is_sq = nvr > 0 && strcmp(vr_list[0], "SQ") == 0;

    if (json_is_array(value)) {
        size_t n = json_array_size(value);
        bool has_items = false;
        size_t i;
        const json_t *x;
        json_array_foreach(value, i, x)
        {
            if (json_is_object(x))
                has_items = true;
            else if (json_is_array(x) || json_is_boolean(x))
                return ahl_fail(err, AHL_EINVAL, "%s.%s[%zu]: not a DICOM value", path, key, i);
        }
        if (is_sq || has_items) {
            if (!force)
                return ahl_fail(err, AHL_EINVAL,
                                "%s.%s: sequence (SQ) attributes can only be updated with force%s",
                                path, key, force_hint(opts));
            return check_sequence_shape(path, key, value, 1, err);
        }
        if (n > 1 && !force)
            return ahl_fail(err, AHL_EINVAL,
                            "%s.%s: multi-valued attributes can only be updated with force%s", path,
                            key, force_hint(opts));
        if (force || n == 0)
            return 0;
        if (ki.entry && ki.kind == KEY_PUBLIC && !ahl_dict_vm_multi(ki.entry))
            return ahl_fail(err, AHL_EINVAL, "%s.%s: VM is 1; give a single value, not an array",
                            path, key);
        value = json_array_get(value, 0);
    } else if (is_sq) {
        if (json_is_null(value))
            return force ? 0
                         : ahl_fail(err, AHL_EINVAL,
                                    "%s.%s: sequence (SQ) attributes can only be updated with "
                                    "force%s",
                                    path, key, force_hint(opts));
        if (!force)
            return ahl_fail(err, AHL_EINVAL, "%s.%s: VR SQ expects an array of item objects", path,
                            key);
        return 0;
    }

    if (force || nvr == 0)
        return 0;
    if (json_is_string(value) && any_backslash_vr(vr_list, nvr) &&
        memchr(json_string_value(value), '\\', json_string_length(value)))
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: a backslash separates multiple values; multi-valued attributes "
                        "can only be updated with force",
                        path, key);
    const char *why = fits_any(vr_list, nvr, value);
    if (why)
        return ahl_fail(err, AHL_EINVAL, "%s.%s: VR %s expects %s", path, key, vr_list[0], why);
    return 0;
}

int ahl_rules_check_remove(enum ahl_level level, const char *path, const char *key,
                           const struct ahl_rules_opts *opts, struct ahl_err *err)
{
    struct key_info ki;
    if (!path)
        path = "";
    int rc = check_common(level, path, key, true, opts, &ki, err);
    if (rc < 0)
        return rc;
    if (is_identity_uid(key))
        return ahl_fail(err, AHL_EINVAL, "%s.%s: identifies its node and can never be removed",
                        path, key);
    bool force = force_applies(opts);
    if (strcmp(key, "StudyID") == 0 && !force)
        return ahl_fail(err, AHL_EINVAL, "%s.%s: removing StudyID needs force%s", path, key,
                        force_hint(opts));
    if (ki.kind == KEY_PUBLIC && ki.entry && strcmp(ki.entry->vr, "SQ") == 0 && !force)
        return ahl_fail(err, AHL_EINVAL,
                        "%s.%s: sequence (SQ) attributes can only be removed with force%s", path,
                        key, force_hint(opts));
    return 0;
}
