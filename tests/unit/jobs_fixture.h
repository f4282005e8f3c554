/* Shared scratch fixture of the jobs tests (test_jobs_*.c): a store and engine opened on a data
 * directory with one ACTIVE data store, and removal of the scratch directory afterwards. Each test
 * keeps its own struct fx, since they lay out different inputs around the data directory.
 * Include after <cmocka.h> and with _XOPEN_SOURCE 700 defined (nftw). */
#ifndef AHL_TESTS_JOBS_FIXTURE_H
#define AHL_TESTS_JOBS_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "meta/meta.h"
#include "store/store.h"
#include "store_fixture.h"

static int jobs_fx_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Removes dir and everything below it, without following links. */
static void jobs_fx_rmtree(const char *dir)
{
    nftw(dir, jobs_fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Opens the test store (store_fixture.h) and the engine in data_dir and creates the ACTIVE data store whose id is
 * ds_number as 32 hex digits; its id is copied to ds. */
static void jobs_fx_open(const char *data_dir, unsigned ds_number, struct ahl_store **store,
                         struct ahl_meta **m, char ds[AHL_ID_LEN + 1])
{
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    assert_int_equal(ahl_test_store_open(data_dir, 4, store), 0);
    assert_int_equal(ahl_meta_open(*store, NULL, m), 0);
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%032x", ds_number);
    snprintf(d.name, sizeof d.name, "t");
    snprintf(d.status, sizeof d.status, "ACTIVE");
    d.created_at_ms = d.updated_at_ms = ahl_now_ms();
    assert_int_equal(ahl_store_begin(*store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    memcpy(ds, d.id, AHL_ID_LEN + 1);
}

#endif /* AHL_TESTS_JOBS_FIXTURE_H */
