/* Response spools (ops_internal.h): a response that may be large is made whole before its first
 * byte is sent, so that the work behind it (a database snapshot, frame files, decoders) ends
 * before a client, perhaps a slow one, reads it. The first SPOOL_MEMORY bytes stay in the
 * response's buffer; past that everything moves to an unlinked temporary file in DATA_DIR/tmp,
 * which the server sends from the descriptor (sendfile). Memory per response stays small however
 * large the answer, and the file vanishes when the response is done. */
#include "api/ops_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/banned.h"

#define SPOOL_MEMORY ((size_t)64 << 10)

void ahl__api_spool_init(struct ahl__api_spool *sp, const struct ahl_api_service *svc,
                         struct ahl_api_resp *resp)
{
    memset(sp, 0, sizeof *sp);
    sp->mem = &resp->raw;
    sp->fd = -1;
    if (svc->data_dir[0])
        snprintf(sp->dir, sizeof sp->dir, "%s/tmp", svc->data_dir);
    else
        snprintf(sp->dir, sizeof sp->dir, "/tmp");
}

int ahl__api_spool_write(void *ctx, const void *p, size_t n)
{
    struct ahl__api_spool *sp = ctx;
    if (sp->fd < 0 && sp->mem->len + n <= SPOOL_MEMORY)
        return ahl_buf_add(sp->mem, p, n);
    if (sp->fd < 0) {
        /* Too big to keep in memory for as long as a slow client takes: move to a file. */
        char path[sizeof sp->dir + 16];
        snprintf(path, sizeof path, "%s/ahl-resp-XXXXXX", sp->dir);
        if ((sp->fd = mkstemp(path)) < 0)
            goto fail;
        unlink(path);
        if (ahl_write_all(sp->fd, sp->mem->data, sp->mem->len) < 0)
            goto fail;
        sp->size = sp->mem->len;
        ahl_buf_reset(sp->mem);
    }
    if (ahl_write_all(sp->fd, p, n) < 0)
        goto fail;
    sp->size += n;
    return 0;
fail:
    sp->write_errno = errno;
    return AHL_EIO;
}

int ahl__api_spool_finish(struct ahl__api_spool *sp, int rc, const char *what,
                          struct ahl_api_resp *resp, struct ahl_err *err)
{
    if (rc < 0 && sp->write_errno == ENOSPC)
        rc = ahl_fail(err, AHL_ENOSPC,
                      "The disk holding the data directory is full: the %s response cannot be "
                      "spooled in %s; free space on it, then retry",
                      what, sp->dir);
    else if (rc < 0 && sp->write_errno)
        rc = ahl_fail(err, rc, "cannot spool the %s response in %s: %s", what, sp->dir,
                      strerror(sp->write_errno));
    if (rc == 0 && sp->fd >= 0 && lseek(sp->fd, 0, SEEK_SET) < 0)
        rc = ahl_fail(err, AHL_EIO, "cannot rewind the %s spool", what);
    if (rc < 0) {
        if (sp->fd >= 0)
            close(sp->fd);
        sp->fd = -1;
        ahl_buf_reset(sp->mem);
        return rc;
    }
    if (sp->fd >= 0) {
        resp->fd = sp->fd;
        resp->fd_size = sp->size;
        sp->fd = -1;
    }
    return 0;
}
