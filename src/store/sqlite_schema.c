/* The SQLite backend's schema: its tables and indexes, and the queues of image sets whose frames
 * and QIDO-RS rows the engine has still to index (the backfills).
 *
 * The schema is versioned with PRAGMA user_version; ahl__sq_migrate() applies every step above
 * the stored version in one transaction. Adding a step means appending to `migrations`.
 */
#include "store/sqlite_internal.h"

#include <stdio.h>

#include "base/log.h"
#include "base/banned.h"

static const char *const migrations[] = {
    /* 1: the first schema. */
    "CREATE TABLE datastore(id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,"
    " kms_key_arn TEXT NOT NULL, lambda_authorizer_arn TEXT NOT NULL,"
    " lossless_storage_format TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE TABLE tag(arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY(arn, key)) WITHOUT ROWID;"
    "CREATE TABLE imageset(id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, state TEXT NOT NULL,"
    " workflow_status TEXT NOT NULL, message TEXT NOT NULL, is_primary INTEGER NOT NULL,"
    " latest_version INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " last_accessed_at INTEGER NOT NULL, deleted_at INTEGER NOT NULL);"
    "CREATE INDEX imageset_datastore ON imageset(datastore_id, id);"
    "CREATE TABLE version(imageset_id TEXT NOT NULL, version INTEGER NOT NULL,"
    " root BLOB NOT NULL, state TEXT NOT NULL, workflow_status TEXT NOT NULL,"
    " message TEXT NOT NULL, forced INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, PRIMARY KEY(imageset_id, version)) WITHOUT ROWID;"
    /* Chunks are a rowid table: rows are often larger than a WITHOUT ROWID table likes. */
    "CREATE TABLE chunk(id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, kind INTEGER NOT NULL,"
    " ulen INTEGER NOT NULL, crc INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE search(imageset_id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL,"
    " is_primary INTEGER NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, patient_id TEXT NOT NULL, patient_name TEXT NOT NULL,"
    " patient_birth_date TEXT NOT NULL, patient_sex TEXT NOT NULL,"
    " study_instance_uid TEXT NOT NULL, study_id TEXT NOT NULL, study_description TEXT NOT NULL,"
    " accession_number TEXT NOT NULL, study_date TEXT NOT NULL, study_time TEXT NOT NULL,"
    " series_instance_uid TEXT NOT NULL, modality TEXT NOT NULL,"
    " body_part_examined TEXT NOT NULL, series_number INTEGER,"
    " number_of_series INTEGER NOT NULL, number_of_instances INTEGER NOT NULL);"
    "CREATE INDEX search_patient ON search(datastore_id, patient_id);"
    "CREATE INDEX search_study ON search(datastore_id, study_instance_uid);"
    "CREATE INDEX search_series ON search(datastore_id, series_instance_uid);"
    "CREATE INDEX search_accession ON search(datastore_id, accession_number);"
    "CREATE INDEX search_study_id ON search(datastore_id, study_id);"
    "CREATE INDEX search_updated ON search(datastore_id, updated_at);"
    "CREATE INDEX search_created ON search(datastore_id, created_at);"
    "CREATE INDEX search_study_date ON search(datastore_id, study_date, study_time);"
    "CREATE TABLE job(id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL, name TEXT NOT NULL,"
    " status TEXT NOT NULL, role_arn TEXT NOT NULL, input_uri TEXT NOT NULL,"
    " output_uri TEXT NOT NULL, message TEXT NOT NULL, client_token TEXT NOT NULL,"
    " submitted_at INTEGER NOT NULL, ended_at INTEGER NOT NULL);"
    "CREATE INDEX job_datastore ON job(datastore_id, submitted_at, id);",
    /* 2: SearchImageSets from indexes. Each EQUAL identifier's index carries updated_at and the
     * id, so the default order (updatedAt DESC) with a keyset cursor is a pure index range; the
     * time sorts and ranges have (datastore_id, time, id). study_dt is the sortable study
     * date-time key (ahl_store_study_dt_key, registered as an SQL function for this step). The
     * frame index answers GetImageFrame without loading the document. */
    "ALTER TABLE search ADD COLUMN study_dt TEXT NOT NULL DEFAULT '';"
    "UPDATE search SET study_dt = ahl_study_dt_key(study_date, study_time);"
    "DROP INDEX search_patient; DROP INDEX search_study; DROP INDEX search_series;"
    "DROP INDEX search_accession; DROP INDEX search_study_id; DROP INDEX search_updated;"
    "DROP INDEX search_created; DROP INDEX search_study_date;"
    "CREATE INDEX search_patient ON search(datastore_id, patient_id, updated_at, imageset_id);"
    "CREATE INDEX search_accession ON search(datastore_id, accession_number, updated_at,"
    " imageset_id);"
    "CREATE INDEX search_study_id ON search(datastore_id, study_id, updated_at, imageset_id);"
    "CREATE INDEX search_study ON search(datastore_id, study_instance_uid, updated_at,"
    " imageset_id);"
    "CREATE INDEX search_series ON search(datastore_id, series_instance_uid, updated_at,"
    " imageset_id);"
    "CREATE INDEX search_primary ON search(datastore_id, is_primary, updated_at, imageset_id);"
    "CREATE INDEX search_updated ON search(datastore_id, updated_at, imageset_id);"
    "CREATE INDEX search_created ON search(datastore_id, created_at, imageset_id);"
    "CREATE INDEX search_study_dt ON search(datastore_id, study_dt, imageset_id);"
    "CREATE TABLE frame(imageset_id TEXT NOT NULL, frame_id TEXT NOT NULL,"
    " transfer_syntax TEXT NOT NULL, PRIMARY KEY(imageset_id, frame_id)) WITHOUT ROWID;",
    /* 3: the sets whose frames were never indexed (written before step 2) wait here until the
     * engine indexes them (ahl_store_frame_backfill_next). */
    "CREATE TABLE frame_backfill(imageset_id TEXT PRIMARY KEY) WITHOUT ROWID;"
    "INSERT INTO frame_backfill SELECT id FROM imageset WHERE state<>'DELETED' AND NOT EXISTS"
    " (SELECT 1 FROM frame WHERE frame.imageset_id = imageset.id);",
    /* 4: the QIDO-RS index (sqlite_qido.c). Sets, series and instances of the latest version of
     * every primary set; one study row per (data store, study) built from them; the modalities
     * of each study for ModalitiesInStudy. Instance rows hang off their series row's id, so
     * Patient and Study attributes are in no instance row. Every search key has an index led by
     * the data store (instance keys: by series, since an instance search names its study).
     * Existing primary sets wait in qido_backfill for the engine to index them. */
    "CREATE TABLE qido_set(imageset_id TEXT PRIMARY KEY, datastore_id TEXT NOT NULL,"
    " root BLOB NOT NULL, updated_at INTEGER NOT NULL, study_uid TEXT NOT NULL,"
    " patient_name TEXT NOT NULL, patient_id TEXT NOT NULL, patient_birth_date TEXT NOT NULL,"
    " patient_birth_time TEXT NOT NULL, birth_tm TEXT NOT NULL, patient_sex TEXT NOT NULL,"
    " study_date TEXT NOT NULL, study_time TEXT NOT NULL, study_tm TEXT NOT NULL,"
    " accession_number TEXT NOT NULL, referring_physician_name TEXT NOT NULL,"
    " study_description TEXT NOT NULL, study_id TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX qido_set_study ON qido_set(datastore_id, study_uid, updated_at);"
    "CREATE TABLE qido_study(id INTEGER PRIMARY KEY, datastore_id TEXT NOT NULL,"
    " study_uid TEXT NOT NULL, imageset_id TEXT NOT NULL, updated_at INTEGER NOT NULL,"
    " patient_name TEXT NOT NULL, pn_norm TEXT NOT NULL, patient_id TEXT NOT NULL,"
    " patient_birth_date TEXT NOT NULL, patient_birth_time TEXT NOT NULL, birth_tm TEXT NOT NULL,"
    " patient_sex TEXT NOT NULL, study_date TEXT NOT NULL, study_time TEXT NOT NULL,"
    " study_tm TEXT NOT NULL, accession_number TEXT NOT NULL,"
    " referring_physician_name TEXT NOT NULL, ref_norm TEXT NOT NULL,"
    " study_description TEXT NOT NULL, study_id TEXT NOT NULL, modalities TEXT NOT NULL,"
    " series_count INTEGER NOT NULL, instance_count INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX qido_study_uid ON qido_study(datastore_id, study_uid);"
    "CREATE INDEX qido_study_updated ON qido_study(datastore_id, updated_at, study_uid);"
    "CREATE INDEX qido_study_pn ON qido_study(datastore_id, pn_norm);"
    "CREATE INDEX qido_study_patient ON qido_study(datastore_id, patient_id);"
    "CREATE INDEX qido_study_birth ON qido_study(datastore_id, patient_birth_date, birth_tm);"
    "CREATE INDEX qido_study_date ON qido_study(datastore_id, study_date, study_tm);"
    "CREATE INDEX qido_study_accession ON qido_study(datastore_id, accession_number);"
    "CREATE INDEX qido_study_ref ON qido_study(datastore_id, ref_norm);"
    "CREATE INDEX qido_study_desc ON qido_study(datastore_id, study_description);"
    "CREATE INDEX qido_study_id ON qido_study(datastore_id, study_id);"
    "CREATE TABLE qido_study_modality(datastore_id TEXT NOT NULL, study_uid TEXT NOT NULL,"
    " modality TEXT NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY(datastore_id, study_uid, modality)) WITHOUT ROWID;"
    "CREATE INDEX qido_modality ON qido_study_modality(datastore_id, modality, updated_at,"
    " study_uid);"
    "CREATE TABLE qido_series(id INTEGER PRIMARY KEY, imageset_id TEXT NOT NULL,"
    " datastore_id TEXT NOT NULL, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL, modality TEXT NOT NULL, series_number INTEGER,"
    " series_description TEXT NOT NULL, series_date TEXT NOT NULL, series_time TEXT NOT NULL,"
    " series_tm TEXT NOT NULL, body_part TEXT NOT NULL, instances INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX qido_series_key ON qido_series(imageset_id, series_uid);"
    "CREATE INDEX qido_series_study ON qido_series(datastore_id, study_uid, updated_at);"
    "CREATE INDEX qido_series_uid ON qido_series(datastore_id, series_uid);"
    "CREATE INDEX qido_series_updated ON qido_series(datastore_id, updated_at, series_uid);"
    "CREATE INDEX qido_series_modality ON qido_series(datastore_id, modality, updated_at);"
    "CREATE INDEX qido_series_number ON qido_series(datastore_id, series_number);"
    "CREATE INDEX qido_series_desc ON qido_series(datastore_id, series_description);"
    "CREATE INDEX qido_series_date ON qido_series(datastore_id, series_date, series_tm);"
    "CREATE INDEX qido_series_body ON qido_series(datastore_id, body_part);"
    "CREATE TABLE qido_instance(id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,"
    " sop_uid TEXT NOT NULL, sop_class TEXT NOT NULL, instance_number INTEGER,"
    " rows_ INTEGER NOT NULL, columns_ INTEGER NOT NULL, frames INTEGER NOT NULL,"
    " warning INTEGER);"
    "CREATE UNIQUE INDEX qido_instance_key ON qido_instance(series_id, sop_uid);"
    "CREATE INDEX qido_instance_number ON qido_instance(series_id, instance_number, sop_uid);"
    "CREATE INDEX qido_instance_class ON qido_instance(series_id, sop_class);"
    "CREATE INDEX qido_instance_warning ON qido_instance(series_id, warning)"
    " WHERE warning IS NOT NULL;"
    "CREATE TABLE qido_backfill(imageset_id TEXT PRIMARY KEY) WITHOUT ROWID;"
    "INSERT INTO qido_backfill SELECT id FROM imageset WHERE state<>'DELETED' AND is_primary<>0"
    " AND latest_version>0;",
    /* 5: StudyDate's index covers the study order, so that a date range matching thousands of
     * studies sorts index entries, not rows (sqlite_qido.c, query_sql). */
    "DROP INDEX qido_study_date;"
    "CREATE INDEX qido_study_date ON qido_study(datastore_id, study_date, study_tm, updated_at,"
    " study_uid);",
    /* 6: import-job leases (store.h, "Import-job leases"): the node running a job, until when,
     * and how many times it was claimed. A job left IN_PROGRESS by an earlier version has no
     * lease (0), so the first claim takes it over. The partial index holds the jobs not ended,
     * the only ones a claim looks at, in claim order. */
    "ALTER TABLE job ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE job ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE job ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX job_open ON job(submitted_at, id) WHERE status IN ('SUBMITTED', 'IN_PROGRESS');",
    /* 7: the event outbox (docs/events.md): events written with the changes they describe, in
     * commit order, until the dispatcher has delivered them; and the dispatcher's lease. */
    "CREATE TABLE event_outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL, detail_type TEXT NOT NULL, resource TEXT NOT NULL,"
    " detail TEXT NOT NULL);"
    "CREATE TABLE event_lease(k INTEGER PRIMARY KEY CHECK (k = 1), node TEXT NOT NULL,"
    " until_ms INTEGER NOT NULL);",
    /* 8: storage tiers (docs/decisions.md#storage-tier-and-last-access). The search row carries
     * its set's last access, so that SearchImageSets answers lastAccessedAt and storageTier from
     * its rows. Sets written before had none recorded: their last write (creation or the
     * latest version) is their last access known. */
    "ALTER TABLE search ADD COLUMN last_accessed_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE imageset SET last_accessed_at = max(created_at, updated_at)"
    " WHERE last_accessed_at = 0;"
    "UPDATE search SET last_accessed_at = coalesce((SELECT last_accessed_at FROM imageset"
    " WHERE imageset.id = search.imageset_id), 0);",
    /* 9: a job's options (store.h, ahl_store_job_options_put): importConfiguration and
     * inputOwnerAccountId as one JSON object, "" for a job started without them. */
    "ALTER TABLE job ADD COLUMN options TEXT NOT NULL DEFAULT '';",
    /* 10: tombstones (docs/decisions.md#tombstones): the deleted image sets in the order they
     * expire, so that expiry reads only them. */
    "CREATE INDEX imageset_deleted ON imageset(deleted_at, id) WHERE state='DELETED';",
    /* 11: the frame fence of frames in an S3 bucket (docs/architecture.md#garbage-collection). */
    "CREATE TABLE frame_fence(id INTEGER PRIMARY KEY CHECK(id=1), epoch INTEGER NOT NULL,"
    " until_ms INTEGER NOT NULL);"
    "INSERT INTO frame_fence VALUES(1, 0, 0);",
};

int ahl__sq_schema_version(void)
{
    return (int)(sizeof migrations / sizeof migrations[0]);
}

/* ahl_study_dt_key(date, time): the SQL face of ahl_store_study_dt_key, for migration 2. */
static void sql_study_dt_key(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char key[AHL_STUDY_DT_KEY_LEN + 1];
    (void)argc;
    ahl_store_study_dt_key((const char *)sqlite3_value_text(argv[0]),
                           (const char *)sqlite3_value_text(argv[1]), key);
    sqlite3_result_text(ctx, key, -1, SQLITE_TRANSIENT);
}

int ahl__sq_migrate(sqlite3 *db)
{
    if (sqlite3_create_function(db, "ahl_study_dt_key", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                sql_study_dt_key, NULL, NULL) != SQLITE_OK)
        return ahl__sq_err(db, SQLITE_ERROR, "registering ahl_study_dt_key");
    /* A new database gives the pages of deleted rows back to the file system when the collector
     * asks (incremental_vacuum, ahl_store_compact); on an existing one this changes nothing until
     * `ahilite gc --vacuum` rebuilds it. Only an empty database takes it, before its first table. */
    int rc = ahl__sq_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
                              " BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = NULL;
    int have = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int want = ahl__sq_schema_version();
    if (have > want) {
        ahl_error("sqlite: database schema %d is newer than this program (%d)", have, want);
        ahl__sq_exec(db, "ROLLBACK");
        return AHL_EUNSUPPORTED;
    }
    /* Nothing to migrate: end without writing, so that a database on a full disk still opens. */
    if (have == want)
        return ahl__sq_exec(db, "COMMIT");
    for (int v = have; v < want; v++) {
        if ((rc = ahl__sq_exec(db, migrations[v])) < 0) {
            ahl__sq_exec(db, "ROLLBACK");
            return rc;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d; COMMIT", want);
    if ((rc = ahl__sq_exec(db, sql)) < 0)
        ahl__sq_exec(db, "ROLLBACK");
    return rc;
}

/* ---- frame backfill ------------------------------------------------------------------------ */

int ahl__sq_frame_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1])
{
    PREP(st, CONN(t), ST_F_BACKFILL_NEXT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        ahl__sq_col_text(st, 0, id, AHL_ID_LEN + 1);
        sqlite3_reset(st);
        return 0;
    }
    return rc == SQLITE_DONE ? AHL_ENOTFOUND : ahl__sq_err(CONN(t)->db, rc, "frame backfill");
}

int ahl__sq_frame_backfill_done(struct ahl_store_tx *t, const char *id)
{
    PREP(st, CONN(t), ST_F_BACKFILL_DONE);
    ahl__sq_bind_text(st, 1, id);
    return ahl__sq_step_done(CONN(t), st, "frame backfill done");
}
