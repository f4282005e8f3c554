/* File-descriptor helpers (fileio.h). */
#include "base/fileio.h"

#include <errno.h>
#include <unistd.h>

#include "base/err.h"
#include "base/banned.h"

int ahl_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return AHL_EIO;
        if (w == 0) {
            errno = EIO;
            return AHL_EIO;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}
