/* The PostgreSQL backend's import jobs: not written yet. Its ops stay NULL, so
 * ahl_store_open_postgres refuses to open a store without them (see pg_conn.c). */
#include "store/pg_internal.h"

#include "base/banned.h"

const char *const ahl__pg_jobs_ddl[] = {NULL};

void ahl__pg_jobs_ops(struct ahl_store_ops *ops)
{
    (void)ops;
}
