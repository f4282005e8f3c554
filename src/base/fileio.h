/* Small file-descriptor helpers shared by the modules that write files and sockets. */
#ifndef AHL_BASE_FILEIO_H
#define AHL_BASE_FILEIO_H

#include <stddef.h>

/* Writes all n bytes, retrying short writes and EINTR. 0, or AHL_EIO with errno left as write()
 * set it (ENOSPC, EPIPE...), so the caller can say why. */
int ahl_write_all(int fd, const void *p, size_t n);

#endif
