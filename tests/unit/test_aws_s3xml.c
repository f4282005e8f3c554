/* Unit tests of the reader of S3's XML replies (aws/s3xml.h): finding elements, decoding text
 * (entities, character references, CDATA), error bodies, and ListObjectsV2 pages (URL-encoded
 * keys, sizes, the continuation token, truncated and malformed replies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aws/s3xml.h"

/* ahl_s3xml_text over a whole NUL-terminated string; the decoded text in out. */
static int text(const char *in, struct ahl_buf *out)
{
    ahl_buf_reset(out);
    return ahl_s3xml_text(in, in + strlen(in), out);
}

static void test_text(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want; /* want NULL: AHL_EPARSE */
    } cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"a&amp;b&lt;c&gt;d&quot;e&apos;f", "a&b<c>d\"e'f"},
        {"&#65;&#x42;&#X43;", "ABC"},
        {"&#xe9;&#233;", "\xc3\xa9\xc3\xa9"},
        {"&#x65e5;", "\xe6\x97\xa5"},
        {"&#x1F600;", "\xf0\x9f\x98\x80"},
        {"&#x10FFFF;", "\xf4\x8f\xbf\xbf"},
        {"&#x0010FFFF;", "\xf4\x8f\xbf\xbf"}, /* the longest reference that fits */
        {"<![CDATA[a&b<c>]]>", "a&b<c>"},
        {"x<![CDATA[]]>y", "xy"},
        {"<![CDATA[]]]]>", "]]"},
        {"a<b", "a<b"},           /* markup other than CDATA is text */
        {"<![CDATA", "<![CDATA"}, /* too short to open a section */
        {"&amp", NULL},           /* no ';' */
        {"&;", NULL},
        {"&nbsp;", NULL}, /* not an XML entity */
        {"&AMP;", NULL},
        {"&#;", NULL},
        {"&#x;", NULL},
        {"&#0;", NULL},       /* U+0000 */
        {"&#xD800;", NULL},   /* a surrogate */
        {"&#x110000;", NULL}, /* beyond Unicode */
        {"&#99999999999;", NULL},
        {"&# 65;", NULL}, /* no blanks */
        {"&#+65;", NULL},
        {"&#x0x41;", NULL},
        {"&#12a;", NULL},
        {"&#x00000000041;", NULL}, /* longer than a reference may be */
        {"<![CDATA[open", NULL},
        {"<![CDATA[open]]", NULL},
    };
    struct ahl_buf out;
    ahl_buf_init(&out, 1024);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = text(cases[i].in, &out);
        if (cases[i].want == NULL) {
            if (rc != AHL_EPARSE)
                fail_msg("'%s': rc %d, want AHL_EPARSE", cases[i].in, rc);
            continue;
        }
        if (rc != 0 || strcmp(out.data, cases[i].want) != 0)
            fail_msg("'%s': rc %d, got '%s', want '%s'", cases[i].in, rc, out.data, cases[i].want);
    }
    /* The buffer's limit is reported, not exceeded. */
    struct ahl_buf small;
    ahl_buf_init(&small, 3);
    assert_int_equal(text("abcd", &small), AHL_ETOOBIG);
    ahl_buf_release(&small);
    ahl_buf_release(&out);
}

/* ahl_s3xml_find over a NUL-terminated string: the content, or NULL when not found. */
static const char *find(const char *xml, const char *tag, char *out, size_t cap)
{
    const char *vs, *ve;
    if (ahl_s3xml_find(xml, xml + strlen(xml), tag, &vs, &ve) < 0)
        return NULL;
    snprintf(out, cap, "%.*s", (int)(ve - vs), vs);
    return out;
}

static void test_find(void **state)
{
    (void)state;
    char got[256];
    assert_string_equal(find("<a><Key>k1</Key><Key>k2</Key></a>", "Key", got, sizeof got), "k1");
    /* A longer tag with the same start is a different element. */
    assert_string_equal(find("<KeyCount>3</KeyCount><Key>x</Key>", "Key", got, sizeof got), "x");
    assert_string_equal(find("<Prefix/><Key>y</Key>", "Prefix", got, sizeof got), "");
    assert_string_equal(find("<Key></Key>", "Key", got, sizeof got), "");
    assert_string_equal(find("<Key>a<b</Key>", "Key", got, sizeof got), "a<b");
    /* Not there, not closed, closed by another name, cut short. */
    assert_null(find("<a>no</a>", "Key", got, sizeof got));
    assert_null(find("<Key>open", "Key", got, sizeof got));
    assert_null(find("<Key>x</KeyX>", "Key", got, sizeof got));
    assert_null(find("<Key>x</Key", "Key", got, sizeof got));
    assert_null(find("<Key", "Key", got, sizeof got));
    assert_null(find("<Key/", "Key", got, sizeof got));
    assert_null(find("", "Key", got, sizeof got));
    /* An element with attributes is not matched (S3 puts none where we look). */
    assert_null(find("<Key a=\"1\">x</Key>", "Key", got, sizeof got));

    /* Nothing past the end is read: the span ends inside the closing tag. */
    const char *xml = "<Key>x</Key>";
    const char *vs, *ve;
    for (size_t n = 0; n < strlen(xml); n++) {
        char *copy = malloc(n ? n : 1); /* exactly n bytes, so ASan sees any overread */
        memcpy(copy, xml, n);
        assert_int_equal(ahl_s3xml_find(copy, copy + n, "Key", &vs, &ve), -1);
        free(copy);
    }
}

static void test_error_body(void **state)
{
    (void)state;
    const char *xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                      "<Message>The specified key does not exist &amp; never did.</Message>"
                      "<Key>a</Key><RequestId>1</RequestId></Error>";
    struct ahl_buf code, msg;
    ahl_buf_init(&code, 256);
    ahl_buf_init(&msg, 1024);
    ahl_s3xml_error(xml, strlen(xml), &code, &msg);
    assert_string_equal(code.data, "NoSuchKey");
    assert_string_equal(msg.data, "The specified key does not exist & never did.");
    /* Unreadable parts are left out whole, not half-decoded. */
    ahl_buf_reset(&code);
    ahl_buf_reset(&msg);
    const char *bad = "<Error><Code>Bad&bogus;</Code><Message>m</Message></Error>";
    ahl_s3xml_error(bad, strlen(bad), &code, &msg);
    assert_int_equal(code.len, 0);
    assert_string_equal(msg.data, "m");
    /* Not XML at all (a proxy's HTML page): nothing. */
    ahl_buf_reset(&msg);
    ahl_s3xml_error("<html>502</html>", 16, &code, &msg);
    assert_int_equal(code.len, 0);
    assert_int_equal(msg.len, 0);
    ahl_buf_release(&code);
    ahl_buf_release(&msg);
}

/* ---- ListObjectsV2 pages ---- */

struct listed {
    int n;
    char keys[8][64];
    uint64_t sizes[8];
    int stop_at; /* return 7 from the call with this index; -1: never */
};

static int on_key(void *ctx, const char *key, uint64_t size)
{
    struct listed *l = ctx;
    if (l->n == l->stop_at)
        return 7;
    assert_true(l->n < 8);
    snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
    l->sizes[l->n++] = size;
    return 0;
}

struct page {
    int rc, truncated;
    struct listed l;
    char token[256];
    char msg[512];
};

static struct page parse(const char *xml, int stop_at)
{
    struct page p = {.l = {.stop_at = stop_at}};
    struct ahl_buf token;
    struct ahl_err err = {0};
    ahl_buf_init(&token, 4096);
    p.rc = ahl_s3xml_list_page(xml, strlen(xml), on_key, &p.l, &p.truncated, &token, &err);
    snprintf(p.token, sizeof p.token, "%s", token.data);
    snprintf(p.msg, sizeof p.msg, "%s", err.msg);
    ahl_buf_release(&token);
    return p;
}

#define HEAD                                       \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" \
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"

static void test_page(void **state)
{
    (void)state;
    /* A truncated page in S3's form, with URL-encoded keys. */
    struct page p = parse(
        HEAD "<Name>bkt</Name><Prefix>in%2F</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
             "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
             "<Contents><Key>in/a+b%26c.dcm</Key><LastModified>2024-01-01T00:00:00.000Z"
             "</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size>"
             "<StorageClass>STANDARD</StorageClass></Contents>"
             "<Contents><Key>in/%C3%A9t%C3%A9%2B.dcm</Key><Size>18446744073709551615</Size>"
             "</Contents>"
             "<Contents><Key>in/%3C%3E</Key><Size>0</Size></Contents>"
             "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&amp;x"
             "</NextContinuationToken><ContinuationToken>prev</ContinuationToken>"
             "</ListBucketResult>",
        -1);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.truncated, 1);
    assert_int_equal(p.l.n, 3);
    assert_string_equal(p.l.keys[0], "in/a b&c.dcm"); /* '+' is a space, %26 a '&' */
    assert_int_equal(p.l.sizes[0], 12);
    assert_string_equal(p.l.keys[1], "in/\xc3\xa9t\xc3\xa9+.dcm");
    assert_true(p.l.sizes[1] == UINT64_MAX);
    assert_string_equal(p.l.keys[2], "in/<>");
    assert_string_equal(p.token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&x");

    /* The last page: no token, not truncated; keys without EncodingType are taken as they are
     * (XML-decoded only), so '+' and '%' stay. */
    p = parse(HEAD "<IsTruncated>false</IsTruncated><Contents><Key>a+b%20&lt;c&gt;</Key>"
                   "<Size>5</Size></Contents></ListBucketResult>",
              -1);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.truncated, 0);
    assert_string_equal(p.l.keys[0], "a+b%20<c>");
    assert_string_equal(p.token, "");

    /* An empty listing; and a page without IsTruncated is the last one. */
    p = parse(HEAD "<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>", -1);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.l.n, 0);
    p = parse(HEAD "<Contents><Key>k</Key></Contents></ListBucketResult>", -1);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.truncated, 0);
    assert_int_equal(p.l.sizes[0], 0); /* no Size: 0 */

    /* The callback's value stops the page and comes back as it is, err untouched. */
    p = parse(HEAD "<Contents><Key>a</Key></Contents><Contents><Key>b</Key></Contents>"
                   "<IsTruncated>true</IsTruncated><NextContinuationToken>t"
                   "</NextContinuationToken></ListBucketResult>",
              1);
    assert_int_equal(p.rc, 7);
    assert_int_equal(p.l.n, 1);
    assert_string_equal(p.msg, "");
}

static void test_page_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *xml, *msg;
        int keys_before; /* keys handed over before the bad one */
    } cases[] = {
        {"", "not a ListBucketResult", 0},
        {"<Error><Code>AccessDenied</Code></Error>", "not a ListBucketResult", 0},
        {"<ListBucketResul", "not a ListBucketResult", 0},
        {HEAD "<Contents><Size>1</Size></Contents>", "bad Key", 0},
        {HEAD "<Contents><Key></Key></Contents>", "bad Key", 0},
        {HEAD "<Contents><Key>a&bogus;</Key></Contents>", "bad Key", 0},
        {HEAD "<Contents><Key>a&#0;</Key></Contents>", "bad Key", 0},
        {HEAD "<EncodingType>url</EncodingType><Contents><Key>a%00b</Key></Contents>", "bad Key",
         0},
        {HEAD "<EncodingType>url</EncodingType><Contents><Key>a%zz</Key></Contents>", "bad Key", 0},
        {HEAD "<Contents><Key>ok</Key></Contents><Contents><Key>x</Key><Size>-1</Size></Contents>",
         "bad Size for key 'x'", 1},
        {HEAD "<Contents><Key>x</Key><Size>18446744073709551616</Size></Contents>",
         "bad Size for key 'x'", 0},
        {HEAD "<Contents><Key>x</Key><Size> 1</Size></Contents>", "bad Size", 0},
        {HEAD "<IsTruncated>true</IsTruncated><NextContinuationToken>a&b"
              "</NextContinuationToken>",
         "NextContinuationToken is unreadable", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct page p = parse(cases[i].xml, -1);
        if (p.rc != AHL_EPARSE || !strstr(p.msg, cases[i].msg) || p.l.n != cases[i].keys_before)
            fail_msg("case %zu: rc %d, %d keys, message '%s'", i, p.rc, p.l.n, p.msg);
    }

    /* A key of AHL_S3_MAX_KEY bytes is fine, one more is not. */
    char xml[4 * AHL_S3_MAX_KEY];
    char key[AHL_S3_MAX_KEY + 2];
    memset(key, 'k', sizeof key - 1);
    key[AHL_S3_MAX_KEY] = '\0';
    snprintf(xml, sizeof xml, HEAD "<Contents><Key>%s</Key></Contents></ListBucketResult>", key);
    assert_int_equal(parse(xml, -1).rc, 0);
    key[AHL_S3_MAX_KEY] = 'k';
    key[AHL_S3_MAX_KEY + 1] = '\0';
    snprintf(xml, sizeof xml, HEAD "<Contents><Key>%s</Key></Contents></ListBucketResult>", key);
    assert_int_equal(parse(xml, -1).rc, AHL_EPARSE);

    /* Every prefix of a good page is read without reading past its end: each one either parses
     * (keys so far) or fails cleanly. */
    const char *good = HEAD "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                            "<Contents><Key>a%20b</Key><Size>3</Size></Contents>"
                            "<Contents><Key>c&amp;d</Key><Size>4</Size></Contents>"
                            "<NextContinuationToken>tok</NextContinuationToken>"
                            "</ListBucketResult>";
    size_t n = strlen(good);
    for (size_t cut = 0; cut <= n; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, good, cut);
        struct listed l = {.stop_at = -1};
        struct ahl_buf token;
        ahl_buf_init(&token, 4096);
        int truncated;
        int rc = ahl_s3xml_list_page(copy, cut, on_key, &l, &truncated, &token, NULL);
        assert_true(rc == 0 || rc == AHL_EPARSE);
        if (cut == n) {
            assert_int_equal(rc, 0);
            assert_int_equal(l.n, 2);
            assert_string_equal(token.data, "tok");
        }
        ahl_buf_release(&token);
        free(copy);
    }
}

struct timed {
    int64_t t[4];
    size_t n;
};

static int on_timed(void *ctx, const char *key, uint64_t size, int64_t mtime_ms)
{
    struct timed *t = ctx;
    (void)key;
    (void)size;
    if (t->n < 4)
        t->t[t->n++] = mtime_ms;
    return 0;
}

static int64_t time_of(const char *s)
{
    int64_t ms = 0;
    return ahl_s3xml_time(s, s + strlen(s), &ms) == 0 ? ms : -2;
}

/* LastModified, as the collector reads it: ISO 8601 UTC with or without a fraction; absent is
 * -1; anything else refuses the page. */
static void test_last_modified(void **state)
{
    (void)state;
    assert_int_equal(time_of("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(time_of("2026-12-08T02:49:05.123Z"), 1796698145123LL);
    assert_int_equal(time_of("2026-12-08T02:49:05Z"), 1796698145000LL);
    assert_int_equal(time_of("2024-02-29T23:59:59.5Z"), 1709251199500LL);
    assert_int_equal(time_of("2024-02-29T23:59:59.123456Z"), 1709251199123LL);
    const char *bad[] = {"", "2026-12-08", "2026-12-08T02:49:05", "2026-12-08T02:49:05.Z",
                         "2026-13-08T02:49:05Z", "2026-12-08 02:49:05Z", "1969-12-31T23:59:59Z",
                         "2026-12-08T24:00:00Z", "2026-12-08T02:49:05+01:00", "x026-12-08T02:49:05Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(time_of(bad[i]), -2);
    const char *xml = HEAD "<Contents><Key>a</Key><LastModified>2026-12-08T02:49:05.123Z"
                           "</LastModified><Size>1</Size></Contents>"
                           "<Contents><Key>b</Key><Size>2</Size></Contents></ListBucketResult>";
    struct timed t = {.n = 0};
    struct ahl_buf token;
    struct ahl_err err = {0};
    int truncated;
    ahl_buf_init(&token, 4096);
    assert_int_equal(ahl_s3xml_list_page_timed(xml, strlen(xml), on_timed, &t, &truncated, &token,
                                               &err),
                     0);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.t[0], 1796698145123LL);
    assert_int_equal(t.t[1], -1);
    const char *bad_xml = HEAD "<Contents><Key>a</Key><LastModified>yesterday</LastModified>"
                               "</Contents></ListBucketResult>";
    t.n = 0;
    assert_int_equal(ahl_s3xml_list_page_timed(bad_xml, strlen(bad_xml), on_timed, &t, &truncated,
                                               &token, &err),
                     AHL_EPARSE);
    assert_non_null(strstr(err.msg, "LastModified"));
    assert_int_equal(t.n, 0);
    ahl_buf_release(&token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),           cmocka_unit_test(test_find),
        cmocka_unit_test(test_error_body),     cmocka_unit_test(test_page),
        cmocka_unit_test(test_page_malformed), cmocka_unit_test(test_last_modified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
