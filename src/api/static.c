/* Static files for the viewer: the request path made safe, the file opened beneath the viewer's
 * directory, Accept-Encoding, media types and whether a name is content-hashed.
 *
 * The path is checked twice, by different means. ahl__static_path refuses every segment that
 * could climb (".." and anything else starting with '.') or hide a separator (an encoded '/',
 * a backslash, NUL), so the relative path it returns names something beneath the directory as
 * text. ahl__static_open then walks it one segment at a time with openat(O_NOFOLLOW) from the
 * directory's descriptor, so a symbolic link inside the tree (which could point anywhere) is
 * refused rather than followed: what is served is a regular file of the tree itself.
 */
#include "api/viewer_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/err.h"
#include "base/banned.h"

int ahl__static_path(const char *raw, size_t n, char *out, size_t cap)
{
    size_t w = 0, seg_start = 0, segments = 0;
    static const char index[] = "index.html";

    if (cap == 0)
        return AHL_ETOOBIG;
    out[0] = '\0';
    if (n > AHL__STATIC_PATH_MAX * 3)
        return AHL_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        int encoded = 0;
        if (c == '%') {
            uint8_t v;
            if (n - i < 3 || ahl_hex_decode(raw + i + 1, &v, 1) < 0)
                return AHL_EINVAL;
            c = v;
            encoded = 1;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || c == '\\' || (encoded && c == '/'))
            return AHL_EINVAL;
        if (c == '/') {
            if (w == seg_start)
                return AHL_EINVAL; /* "//", or a path starting with '/' */
        } else if (w == seg_start) {
            if (c == '.')
                return AHL_EINVAL;
            if (++segments > AHL__STATIC_SEGMENTS_MAX)
                return AHL_EINVAL;
        }
        if (w + 1 >= cap || w >= AHL__STATIC_PATH_MAX)
            return AHL_ETOOBIG;
        out[w++] = (char)c;
        if (c == '/')
            seg_start = w;
    }
    if (w == seg_start) { /* "" or a trailing '/': the directory's index */
        if (w + sizeof index > cap || w + sizeof index > AHL__STATIC_PATH_MAX)
            return AHL_ETOOBIG;
        memcpy(out + w, index, sizeof index);
        return 0;
    }
    out[w] = '\0';
    return 0;
}

int ahl__static_open(int root, const char *rel, int *fd, struct stat *st)
{
    char seg[AHL__STATIC_PATH_MAX + 1];
    int dir = root, rc = AHL_ENOTFOUND;

    *fd = -1;
    for (const char *p = rel;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= sizeof seg)
            break;
        memcpy(seg, p, len);
        seg[len] = '\0';
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
        int next = openat(dir, seg, slash ? flags | O_DIRECTORY : flags);
        if (dir != root)
            close(dir);
        dir = root;
        if (next < 0) {
            /* ELOOP: a symbolic link; ENOTDIR: a file where a directory was needed. */
            rc = errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EACCES ||
                         errno == ENAMETOOLONG
                     ? AHL_ENOTFOUND
                     : AHL_EIO;
            break;
        }
        if (!slash) {
            if (fstat(next, st) < 0 || !S_ISREG(st->st_mode)) {
                close(next);
                break;
            }
            /* Opened non-blocking so that a FIFO could not stall the thread; reads of a regular
             * file ignore the flag, but clear it all the same. */
            fcntl(next, F_SETFL, fcntl(next, F_GETFL) & ~O_NONBLOCK);
            *fd = next;
            return 0;
        }
        dir = next;
        p = slash + 1;
    }
    if (dir != root)
        close(dir);
    return rc;
}

/* Whether the parameters in s[0..n) (";q=0.5;...") leave the coding accepted: not with a q-value
 * of zero ("0", "0.", "0.000"). */
static bool q_positive(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ';')
            continue;
        size_t j = i + 1;
        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        if (j + 1 >= n || (s[j] != 'q' && s[j] != 'Q') || s[j + 1] != '=')
            continue;
        size_t v = j + 2, e = v;
        while (e < n && s[e] != ';' && s[e] != ' ' && s[e] != '\t')
            e++;
        bool zero = e > v && s[v] == '0';
        for (size_t k = v + 1; zero && k < e; k++)
            zero = k == v + 1 ? s[k] == '.' : s[k] == '0';
        if (zero)
            return false;
    }
    return true;
}

unsigned ahl__accept_encodings(const char *header)
{
    /* Codings named explicitly decide for themselves ("gzip;q=0" refuses gzip even beside a
     * "*" that accepts); "*" decides for the ones not named. */
    unsigned named_yes = 0, named_no = 0;
    int star = 0; /* 1: accepted, -1: refused, 0: absent */
    if (!header)
        return 0;
    for (const char *p = header; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t a = 0;
        while (a < len && (p[a] == ' ' || p[a] == '\t'))
            a++;
        size_t b = a;
        while (b < len && p[b] != ';' && p[b] != ' ' && p[b] != '\t')
            b++;
        bool yes = q_positive(p + b, len - b);
        unsigned bit = 0;
        if (b - a == 4 && !strncasecmp(p + a, "gzip", 4))
            bit = AHL__ENC_GZIP;
        else if (b - a == 2 && !strncasecmp(p + a, "br", 2))
            bit = AHL__ENC_BR;
        else if (b - a == 1 && p[a] == '*')
            star = star < 0 || !yes ? -1 : 1;
        if (bit && yes)
            named_yes |= bit;
        else if (bit)
            named_no |= bit;
        if (!end)
            break;
        p = end + 1;
    }
    unsigned all = AHL__ENC_GZIP | AHL__ENC_BR;
    unsigned unnamed = all & ~(named_yes | named_no);
    return (named_yes & ~named_no) | (star > 0 ? unnamed : 0);
}

const char *ahl__static_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"webmanifest", "application/manifest+json"},
        {"wasm", "application/wasm"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
        {"txt", "text/plain; charset=utf-8"},
        {"xml", "application/xml"},
        {"pdf", "application/pdf"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    }
    return "application/octet-stream";
}

bool ahl__static_hashed(const char *name)
{
    const char *slash = strrchr(name, '/');
    size_t run = 0;
    for (const char *p = slash ? slash + 1 : name; *p; p++) {
        run = isxdigit((unsigned char)*p) ? run + 1 : 0;
        if (run >= 16)
            return true;
    }
    return false;
}
