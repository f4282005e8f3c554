/* ahilite inspect: shows what the Part-10 reader makes of DICOM files, one line per element, or
 * as the DICOM JSON model (PS3.18 Annex F) with --json. It is the reader's user-facing view and
 * what the corpus test compares against DCMTK's dcm2json. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "dicom/dicomjson.h"
#include "dicom/dict.h"
#include "dicom/p10.h"
#include "json/json.h"

#include "base/banned.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: ahilite inspect [--json] FILE...\n"
        "\n"
        "Reads DICOM Part-10 files and prints their data sets: one line per element\n"
        "  (gggg,eeee) VR length keyword value\n"
        "with sequence items indented, followed by where the pixel data is. Private elements\n"
        "show private[CREATOR] in place of a keyword. Values longer than the reader's inline\n"
        "limit and pixel data are not read; their place in the file is shown.\n"
        "\n"
        "  --json   print each data set in the DICOM JSON model (PS3.18 Annex F), one document\n"
        "           per line; values left in the file are omitted\n"
        "\n"
        "Exit status: 0 when every file was read, 1 when any failed (the reason is printed).\n");
}

/* Prints at most max bytes of UTF-8 text without cutting a character, control bytes as '.'. */
static void print_text(const uint8_t *s, size_t n, size_t max)
{
    size_t cut = n;
    if (cut > max) {
        cut = max;
        while (cut > 0 && (s[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut; i++)
        putchar(s[i] < 0x20 || s[i] == 0x7F ? '.' : s[i]);
    if (cut < n)
        fputs("...", stdout);
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static void print_numbers(const struct ahl_dcm_elem *e)
{
    unsigned unit = 2;
    const char *vr = e->vr;
    if (!strcmp(vr, "UL") || !strcmp(vr, "SL") || !strcmp(vr, "FL") || !strcmp(vr, "AT") ||
        !strcmp(vr, "OF") || !strcmp(vr, "OL"))
        unit = 4;
    else if (!strcmp(vr, "FD") || !strcmp(vr, "UV") || !strcmp(vr, "SV") || !strcmp(vr, "OD") ||
             !strcmp(vr, "OV"))
        unit = 8;
    size_t count = e->value_len / unit;
    for (size_t i = 0; i < count && i < 8; i++) {
        uint64_t u = le(e->value + i * unit, unit);
        if (i > 0)
            putchar('\\');
        if (!strcmp(vr, "SS"))
            printf("%d", (int16_t)u);
        else if (!strcmp(vr, "SL"))
            printf("%d", (int32_t)u);
        else if (!strcmp(vr, "SV"))
            printf("%lld", (long long)(int64_t)u);
        else if (!strcmp(vr, "AT"))
            printf("(%04X,%04X)", (unsigned)(u & 0xFFFF), (unsigned)(u >> 16));
        else if (!strcmp(vr, "FL") || !strcmp(vr, "OF")) {
            float f;
            uint32_t w = (uint32_t)u;
            memcpy(&f, &w, 4);
            printf("%.9g", f);
        } else if (!strcmp(vr, "FD") || !strcmp(vr, "OD")) {
            double d;
            memcpy(&d, &u, 8);
            printf("%.17g", d);
        } else
            printf("%llu", (unsigned long long)u);
    }
    if (count > 8)
        printf("... (%zu values)", count);
}

/* The private creator element that reserves the block of a private data element (gggg,xxyy):
 * (gggg,00xx) in the same data set, or NULL. */
static const struct ahl_dcm_elem *private_creator(const struct ahl_dcm_dataset *ds, uint32_t tag)
{
    uint16_t group = AHL_DCM_GROUP(tag), elem = AHL_DCM_ELEMENT(tag);
    if (!(group & 1) || elem < 0x1000)
        return NULL;
    const struct ahl_dcm_elem *c = ahl_dcm_find(ds, AHL_DCM_TAG(group, elem >> 8));
    return c != NULL && c->value != NULL ? c : NULL;
}

static void print_dataset(const struct ahl_dcm_dataset *ds, int depth)
{
    for (size_t i = 0; i < ds->n; i++) {
        const struct ahl_dcm_elem *e = &ds->elems[i];
        const struct ahl_dict_entry *d = ahl_dict_by_tag(e->tag);
        printf("%*s(%04X,%04X) %s ", depth * 2, "", (unsigned)AHL_DCM_GROUP(e->tag),
               (unsigned)AHL_DCM_ELEMENT(e->tag), e->vr);
        if (e->length == AHL_DCM_UNDEFINED_LENGTH)
            fputs("u/l", stdout);
        else
            printf("%u", e->length);
        const struct ahl_dcm_elem *creator = private_creator(ds, e->tag);
        if (creator != NULL) {
            size_t n = creator->value_len;
            while (n > 0 && (creator->value[n - 1] == ' ' || creator->value[n - 1] == '\0'))
                n--;
            fputs(" private[", stdout);
            print_text(creator->value, n, 64);
            fputs("] ", stdout);
        } else {
            printf(" %s ", d != NULL ? d->keyword : "?");
        }
        if (e->n_items > 0 || !strcmp(e->vr, "SQ")) {
            printf("(%zu item%s)\n", e->n_items, e->n_items == 1 ? "" : "s");
            for (size_t k = 0; k < e->n_items; k++) {
                printf("%*s  item %zu\n", depth * 2, "", k + 1);
                print_dataset(&e->items[k], depth + 2);
            }
            continue;
        }
        if (e->value == NULL) {
            if (e->length == AHL_DCM_UNDEFINED_LENGTH)
                printf("(encapsulated, at offset %llu)", (unsigned long long)e->value_offset);
            else if (e->length > 0)
                printf("(not read: %u bytes at offset %llu)", e->length,
                       (unsigned long long)e->value_offset);
        } else if (ahl_dcm_vr_is_text(e->vr)) {
            putchar('[');
            print_text(e->value, e->value_len, 64);
            putchar(']');
        } else if (!strcmp(e->vr, "OB") || !strcmp(e->vr, "UN")) {
            for (size_t k = 0; k < e->value_len && k < 16; k++)
                printf("%s%02x", k ? " " : "", e->value[k]);
            if (e->value_len > 16)
                fputs(" ...", stdout);
        } else {
            print_numbers(e);
        }
        putchar('\n');
    }
}

static void print_pixel(const struct ahl_dcm_file *f)
{
    const struct ahl_dcm_pixel *px = &f->pixel;
    if (!px->present) {
        puts("# no pixel data");
        return;
    }
    if (px->encapsulated)
        printf("# pixel data (%04X,%04X) encapsulated at offset %llu (%llu bytes): %zu fragments, "
               "basic offset table with %zu entries%s\n",
               (unsigned)AHL_DCM_GROUP(px->tag), (unsigned)AHL_DCM_ELEMENT(px->tag),
               (unsigned long long)px->value_offset, (unsigned long long)px->value_length,
               px->n_fragments, px->n_offsets,
               px->extended_offsets_lengths != NULL ? ", extended offset table" : "");
    else
        printf("# pixel data (%04X,%04X) %s native at offset %llu: %llu bytes\n",
               (unsigned)AHL_DCM_GROUP(px->tag), (unsigned)AHL_DCM_ELEMENT(px->tag), px->vr,
               (unsigned long long)px->value_offset, (unsigned long long)px->value_length);
}

static int inspect_json(const char *path, const struct ahl_dcm_file *f)
{
    struct ahl_err err;
    struct ahl_buf out;
    json_t *j = NULL;
    int rc;

    ahl_err_clear(&err);
    ahl_buf_init(&out, AHL_BUF_UNLIMITED);
    rc = ahl_dicomjson_from_dataset(&f->ds, NULL, &j, &err);
    if (rc == 0)
        rc = ahl_json_write(j, &out);
    if (rc == 0 && ahl_buf_addc(&out, '\n') == 0)
        fwrite(out.data, 1, out.len, stdout);
    else
        fprintf(stderr, "ahilite inspect: %s: %s\n", path, err.msg[0] ? err.msg : ahl_strerror(rc));
    json_decref(j);
    ahl_buf_release(&out);
    return rc;
}

int ahl_cmd_inspect(int argc, char **argv)
{
    bool json = false;
    int status = 0, first = 1;

    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "--json")) {
            json = true;
        } else if (!strcmp(argv[first], "--help") || !strcmp(argv[first], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[first], "--")) {
            first++;
            break;
        } else {
            fprintf(stderr, "ahilite inspect: unknown option '%s'\n", argv[first]);
            usage(stderr);
            return 2;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    for (int i = first; i < argc; i++) {
        struct ahl_dcm_file *f = NULL;
        struct ahl_err err;
        ahl_err_clear(&err);
        if (ahl_p10_read_path(argv[i], NULL, &f, &err) < 0) {
            fprintf(stderr, "ahilite inspect: %s: %s\n", argv[i], err.msg);
            status = 1;
            continue;
        }
        if (json) {
            if (inspect_json(argv[i], f) < 0)
                status = 1;
        } else {
            printf("# file: %s\n# transfer syntax: %s%s%s%s\n", argv[i], f->transfer_syntax,
                   f->has_preamble ? "" : " (no preamble)", f->meta.n ? "" : " (no meta group)",
                   f->deflated ? " (deflated; offsets are in the inflated stream)" : "");
            print_dataset(&f->meta, 0);
            print_dataset(&f->ds, 0);
            print_pixel(f);
        }
        ahl_dcm_file_free(f);
    }
    fflush(stdout);
    return status;
}
