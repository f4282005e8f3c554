/* The VFS every connection of the SQLite backend opens its database through: the platform's
 * default VFS, except that writes to a WAL file are gathered and reach the file in one write per
 * commit.
 *
 * Why. SQLite appends a WAL frame with two writes, its 24-byte header and then the page, so a
 * commit of N pages is 2N pwrite calls; on the virtual machines this server runs on a system call
 * costs microseconds, and a metadata update's commit writes some 10 to 30 pages.
 *
 * How. A WAL file's writes are appended to a buffer while each starts where the previous one
 * ended; the buffer reaches the file (one pwrite) when
 *   - a commit's last frame is complete: the page written right after a frame header whose
 *     "database size after commit" field is not zero, so that the write that completes a commit
 *     returns the commit's write error, if any, to SQLite, which then fails the commit;
 *   - a write does not follow on (the WAL header at offset 0 when the WAL restarts, a frame
 *     rewritten in place), or would overflow the buffer;
 *   - before any read, size query, truncation, sync, file control or close of that file.
 * SQLite publishes a commit to other connections (the wal-index header in shared memory) only
 * after sqlite3WalFrames has written every frame, that is after the last frame's write returned,
 * so no reader can look for a frame that is not yet in the file; a crash before the flush loses
 * a commit that was never acknowledged, exactly as a crash before SQLite's own writes would.
 * Every other file (the database, its shared memory) is the default VFS's file, untouched. */
#include "store/sqlite_internal.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/banned.h"

/* The most a WAL file buffers before it writes: a commit of up to 31 pages (4 KiB) goes in one
 * write. The unix VFS writes at most 128 KiB - 1 bytes in one call (it masks the length with
 * 0x1ffff) and reports a longer write as a full disk. */
#define WAL_BUF 0x1ffff

struct wal_file {
    sqlite3_file base;  /* pMethods = &wal_io */
    sqlite3_file *real; /* the default VFS's file, in the same allocation after this struct */
    unsigned char *buf; /* gathered bytes (allocated on the first write), for offset off */
    size_t len;
    sqlite3_int64 off;
    bool commit_next; /* the last write was a commit frame's header: the next one ends it */
};

static sqlite3_vfs vfs;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static struct wal_file *W(sqlite3_file *f)
{
    return (struct wal_file *)f;
}

/* Writes the gathered bytes. */
static int flush(struct wal_file *w)
{
    if (!w->len)
        return SQLITE_OK;
    int rc = w->real->pMethods->xWrite(w->real, w->buf, (int)w->len, w->off);
    w->len = 0;
    return rc;
}

static int wal_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    struct wal_file *w = W(f);
    int rc;
    if (w->len && (off != w->off + (sqlite3_int64)w->len || w->len + (size_t)n > WAL_BUF) &&
        (rc = flush(w)) != SQLITE_OK)
        return rc;
    if ((size_t)n > WAL_BUF || (!w->buf && !(w->buf = malloc(WAL_BUF)))) {
        rc = flush(w);
        if (rc == SQLITE_OK)
            rc = w->real->pMethods->xWrite(w->real, p, n, off);
    } else {
        if (!w->len)
            w->off = off;
        memcpy(w->buf + w->len, p, (size_t)n);
        w->len += (size_t)n;
        rc = SQLITE_OK;
    }
    /* A frame header is the only 24-byte write; bytes 4..7 hold the database size after a commit
     * (big-endian), 0 in every frame but a commit's last. */
    bool ends_commit = w->commit_next;
    const unsigned char *h = p;
    w->commit_next = n == 24 && (h[4] | h[5] | h[6] | h[7]) != 0;
    if (rc == SQLITE_OK && ends_commit)
        rc = flush(w);
    return rc;
}

static int wal_close(sqlite3_file *f)
{
    struct wal_file *w = W(f);
    int rc = flush(w);
    int crc = w->real->pMethods ? w->real->pMethods->xClose(w->real) : SQLITE_OK;
    free(w->buf);
    w->buf = NULL;
    return rc != SQLITE_OK ? rc : crc;
}

/* Every other method: the gathered bytes first where the call could see the file's contents or
 * size, then the default VFS's method. */
#define FLUSHED(call)                       \
    do {                                    \
        struct wal_file *w = W(f);          \
        int rc = flush(w);                  \
        return rc != SQLITE_OK ? rc : call; \
    } while (0)

static int wal_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    FLUSHED(w->real->pMethods->xRead(w->real, p, n, off));
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    FLUSHED(w->real->pMethods->xTruncate(w->real, size));
}

static int wal_sync(sqlite3_file *f, int flags)
{
    FLUSHED(w->real->pMethods->xSync(w->real, flags));
}

static int wal_size(sqlite3_file *f, sqlite3_int64 *size)
{
    FLUSHED(w->real->pMethods->xFileSize(w->real, size));
}

static int wal_lock(sqlite3_file *f, int lock)
{
    return W(f)->real->pMethods->xLock(W(f)->real, lock);
}

static int wal_unlock(sqlite3_file *f, int lock)
{
    return W(f)->real->pMethods->xUnlock(W(f)->real, lock);
}

static int wal_reserved(sqlite3_file *f, int *out)
{
    return W(f)->real->pMethods->xCheckReservedLock(W(f)->real, out);
}

static int wal_fcntl(sqlite3_file *f, int op, void *arg)
{
    FLUSHED(w->real->pMethods->xFileControl(w->real, op, arg));
}

static int wal_sector(sqlite3_file *f)
{
    return W(f)->real->pMethods->xSectorSize(W(f)->real);
}

static int wal_device(sqlite3_file *f)
{
    return W(f)->real->pMethods->xDeviceCharacteristics(W(f)->real);
}

/* Version 1: SQLite maps and shares memory through the database file's methods only, never a
 * WAL file's. */
static const sqlite3_io_methods wal_io = {
    .iVersion = 1,
    .xClose = wal_close,
    .xRead = wal_read,
    .xWrite = wal_write,
    .xTruncate = wal_truncate,
    .xSync = wal_sync,
    .xFileSize = wal_size,
    .xLock = wal_lock,
    .xUnlock = wal_unlock,
    .xCheckReservedLock = wal_reserved,
    .xFileControl = wal_fcntl,
    .xSectorSize = wal_sector,
    .xDeviceCharacteristics = wal_device,
};

static int vfs_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *f, int flags, int *out)
{
    sqlite3_vfs *real = v->pAppData;
    if (!(flags & SQLITE_OPEN_WAL))
        return real->xOpen(real, name, f, flags, out);
    struct wal_file *w = W(f);
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)(w + 1);
    int rc = real->xOpen(real, name, w->real, flags, out);
    if (rc != SQLITE_OK) {
        w->base.pMethods = NULL; /* SQLite calls no method of a file it failed to open */
        return rc;
    }
    w->base.pMethods = &wal_io;
    return SQLITE_OK;
}

/* The rest of the VFS is the default one's. */
#define FWD(name, params, args)          \
    static int vfs_##name params         \
    {                                    \
        sqlite3_vfs *real = v->pAppData; \
        return real->x##name args;       \
    }
FWD(Delete, (sqlite3_vfs * v, const char *name, int sync), (real, name, sync))
FWD(Access, (sqlite3_vfs * v, const char *name, int flags, int *out), (real, name, flags, out))
FWD(FullPathname, (sqlite3_vfs * v, const char *name, int n, char *out), (real, name, n, out))
FWD(Randomness, (sqlite3_vfs * v, int n, char *out), (real, n, out))
FWD(Sleep, (sqlite3_vfs * v, int us), (real, us))
FWD(CurrentTimeInt64, (sqlite3_vfs * v, sqlite3_int64 *out), (real, out))
FWD(GetLastError, (sqlite3_vfs * v, int n, char *out), (real, n, out))

static int vfs_CurrentTime(sqlite3_vfs *v, double *out)
{
    sqlite3_vfs *real = v->pAppData;
    return real->xCurrentTime(real, out);
}

static void *vfs_DlOpen(sqlite3_vfs *v, const char *name)
{
    sqlite3_vfs *real = v->pAppData;
    return real->xDlOpen(real, name);
}

static void vfs_DlError(sqlite3_vfs *v, int n, char *out)
{
    sqlite3_vfs *real = v->pAppData;
    real->xDlError(real, n, out);
}

static void (*vfs_DlSym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    sqlite3_vfs *real = v->pAppData;
    return real->xDlSym(real, h, sym);
}

static void vfs_DlClose(sqlite3_vfs *v, void *h)
{
    sqlite3_vfs *real = v->pAppData;
    real->xDlClose(real, h);
}

static int registered = SQLITE_ERROR;

static void do_register(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real || real->iVersion < 2)
        return;
    vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct wal_file) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = AHL__SQ_VFS,
        .pAppData = real,
        .xOpen = vfs_open,
        .xDelete = vfs_Delete,
        .xAccess = vfs_Access,
        .xFullPathname = vfs_FullPathname,
        .xDlOpen = vfs_DlOpen,
        .xDlError = vfs_DlError,
        .xDlSym = vfs_DlSym,
        .xDlClose = vfs_DlClose,
        .xRandomness = vfs_Randomness,
        .xSleep = vfs_Sleep,
        .xCurrentTime = vfs_CurrentTime,
        .xGetLastError = vfs_GetLastError,
        .xCurrentTimeInt64 = vfs_CurrentTimeInt64,
    };
    registered = sqlite3_vfs_register(&vfs, 0);
}

const char *ahl__sq_vfs(void)
{
    pthread_once(&once, do_register);
    return registered == SQLITE_OK ? AHL__SQ_VFS : NULL;
}
