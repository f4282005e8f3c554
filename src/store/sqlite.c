/* The SQLite backend of the storage interface: one database file in the data directory.
 *
 * Connections: one writer connection, guarded by a mutex so write transactions run one at a time
 * (each starts with BEGIN IMMEDIATE, so a second process such as `ahilite check` waits on
 * busy_timeout instead of deadlocking), and a pool of reader connections created on demand up to
 * max_readers; a read transaction takes an idle reader (or waits for one) and gets a consistent
 * WAL snapshot. Every connection caches its prepared statements, indexed by enum stmt_id.
 *
 * Durability: WAL with synchronous=NORMAL: a commit survives a process crash (kill -9); a power
 * loss may lose the last commits but never corrupts the database.
 *
 * Group commit: write transactions of concurrent threads share one SQLite transaction. The first
 * write transaction (ahl_store_begin(write)) of a batch opens it (BEGIN IMMEDIATE); each later
 * one is a SAVEPOINT inside it. When one ends:
 *   - rollback: ROLLBACK TO its savepoint, which undoes exactly its own writes (the first one:
 *     ROLLBACK, as the batch holds nothing else yet, and the batch is over);
 *   - commit: RELEASE its savepoint (the first one: nothing); its writes now belong to the
 *     batch.
 * Then, if another thread is waiting to begin a write transaction (and fewer than BATCH_MAX
 * transactions have ended in the batch, and no TRUNCATE checkpoint waits for the write lock, see
 * "Checkpoints"), the open transaction is handed on: the write lock
 * is released without COMMIT and a committing thread sleeps until the batch's COMMIT. Otherwise
 * the thread COMMITs the batch itself and wakes every member with the COMMIT's result.
 * Invariants:
 *   - write transactions still run one at a time, in write-lock order, each seeing every earlier
 *     one's writes (committed or still in the batch): compare-and-set order is unchanged;
 *   - ahl_store_commit() returns 0 only after the COMMIT that made its writes durable (WAL,
 *     synchronous=NORMAL): nothing is acknowledged before it survives a crash; a failed COMMIT
 *     fails every member of the batch;
 *   - the SQLite transaction is open only while some thread holds the write lock or has handed
 *     it to a waiter, who will end it the same way: a batch always ends in one COMMIT (or, if
 *     SQLite abandoned the transaction after an I/O error, with every member failed);
 *   - a lone writer (nobody waiting) commits at once, exactly as without batching.
 * Other connections (readers, other processes) see a batch's writes only after its COMMIT.
 *
 * Checkpoints: SQLite's automatic checkpoint runs inside the commit that crosses the threshold,
 * which makes that one commit ~100x slower than the others (copying pages and fsyncing). The
 * writer's automatic checkpoint is turned off; its WAL hook wakes a checkpointer thread with its
 * own connection after every CKPT_FRAMES new frames, and that thread runs a PASSIVE checkpoint,
 * which never blocks writers or readers. A passive checkpoint copies back only the frames that no
 * reader still needs, and the WAL starts over from its beginning only when a writer finds every
 * frame copied back and no reader inside the WAL; readers that keep overlapping one another never
 * leave that moment, and the WAL then grows without end. So when a passive checkpoint leaves
 * frames behind, or the WAL grows past WAL_MAX_FRAMES anyway, the checkpointer escalates to a
 * TRUNCATE checkpoint: it takes the write lock (see ckpt_truncate: no write transaction of this
 * process is open then), waits at most CKPT_WAIT_MS for the readers that began before it, copies
 * everything back and truncates the WAL to zero bytes. Writers wait for that, readers do not.
 * A TRUNCATE that times out is retried after CKPT_RETRY_FRAMES more frames, not at once.
 *
 * Schema: versioned with PRAGMA user_version; migrate() applies every step above the stored
 * version in one transaction. Adding a step means appending to `migrations`.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/err.h"
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
};

enum stmt_id {
    ST_DS_INSERT,
    ST_DS_UPDATE,
    ST_DS_GET,
    ST_DS_LIST,
    ST_DS_DELETE,
    ST_DS_COUNT,
    ST_TAG_PUT,
    ST_TAG_DELETE,
    ST_TAG_LIST,
    ST_TAG_DELETE_ALL,
    ST_IS_INSERT,
    ST_IS_UPDATE,
    ST_IS_ADVANCE,
    ST_IS_GET,
    ST_IS_LIST,
    ST_IS_BY_STUDY,
    ST_V_INSERT,
    ST_V_UPDATE,
    ST_V_GET,
    ST_V_LIST,
    ST_V_SCAN,
    ST_C_PUT,
    ST_C_GET,
    ST_C_SCAN,
    ST_C_STATS,
    ST_S_PUT,
    ST_S_GET,
    ST_S_DELETE,
    ST_F_PUT,
    ST_F_GET,
    ST_F_COPY,
    ST_F_DELETE_SET,
    ST_F_BACKFILL_NEXT,
    ST_F_BACKFILL_DONE,
    ST_J_INSERT,
    ST_J_UPDATE,
    ST_J_GET,
    ST_J_LIST,
    ST_COUNT
};

#define IS_COLS                                                                                  \
    "id, datastore_id, state, workflow_status, message, is_primary, latest_version, created_at," \
    " updated_at, last_accessed_at, deleted_at"
#define V_COLS \
    "imageset_id, version, root, state, workflow_status, message, forced, created_at, updated_at"
#define DS_COLS                                                                                  \
    "id, name, status, kms_key_arn, lambda_authorizer_arn, lossless_storage_format, created_at," \
    " updated_at"
#define J_COLS                                                                                \
    "id, datastore_id, name, status, role_arn, input_uri, output_uri, message, client_token," \
    " submitted_at, ended_at"
#define S_COLS                                                                             \
    "imageset_id, datastore_id, is_primary, version, created_at, updated_at, patient_id,"  \
    " patient_name, patient_birth_date, patient_sex, study_instance_uid, study_id,"        \
    " study_description, accession_number, study_date, study_time, series_instance_uid,"   \
    " modality, body_part_examined, series_number, number_of_series, number_of_instances," \
    " study_dt"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_DS_INSERT] = "INSERT INTO datastore(" DS_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [ST_DS_UPDATE] = "UPDATE datastore SET name=?2, status=?3, kms_key_arn=?4,"
                     " lambda_authorizer_arn=?5, lossless_storage_format=?6, created_at=?7,"
                     " updated_at=?8 WHERE id=?1",
    [ST_DS_GET] = "SELECT " DS_COLS " FROM datastore WHERE id=?1",
    [ST_DS_LIST] = "SELECT " DS_COLS " FROM datastore WHERE id > ?1 AND (?2 IS NULL OR status=?2)"
                   " ORDER BY id LIMIT ?3",
    [ST_DS_DELETE] = "DELETE FROM datastore WHERE id=?1",
    [ST_DS_COUNT] = "SELECT count(*) FROM imageset WHERE datastore_id=?1 AND state<>'DELETED'",
    [ST_TAG_PUT] = "INSERT OR REPLACE INTO tag(arn, key, value) VALUES(?1,?2,?3)",
    [ST_TAG_DELETE] = "DELETE FROM tag WHERE arn=?1 AND key=?2",
    [ST_TAG_LIST] = "SELECT key, value FROM tag WHERE arn=?1 ORDER BY key",
    [ST_TAG_DELETE_ALL] = "DELETE FROM tag WHERE arn=?1",
    [ST_IS_INSERT] = "INSERT INTO imageset(" IS_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [ST_IS_UPDATE] = "UPDATE imageset SET datastore_id=?2, state=?3, workflow_status=?4,"
                     " message=?5, is_primary=?6, latest_version=?7, created_at=?8,"
                     " updated_at=?9, last_accessed_at=?10, deleted_at=?11 WHERE id=?1",
    /* A set never changes data store: leaving datastore_id out of SET spares the write of its
     * index (SQLite rewrites every index over a column the SET names); a different one fails
     * the compare-and-set instead. */
    [ST_IS_ADVANCE] = "UPDATE imageset SET state=?3, workflow_status=?4,"
                      " message=?5, is_primary=?6, latest_version=?7, created_at=?8,"
                      " updated_at=?9, last_accessed_at=?10, deleted_at=?11"
                      " WHERE id=?1 AND datastore_id=?2 AND latest_version=?12",
    [ST_IS_GET] = "SELECT " IS_COLS " FROM imageset WHERE id=?1",
    [ST_IS_LIST] = "SELECT " IS_COLS " FROM imageset WHERE datastore_id=?1 AND id > ?2"
                   " AND state<>'DELETED' ORDER BY id LIMIT ?3",
    [ST_IS_BY_STUDY] = "SELECT i.id, i.datastore_id, i.state, i.workflow_status, i.message,"
                       " i.is_primary, i.latest_version, i.created_at, i.updated_at,"
                       " i.last_accessed_at, i.deleted_at FROM search s"
                       " JOIN imageset i ON i.id = s.imageset_id"
                       " WHERE s.datastore_id=?1 AND s.study_instance_uid=?2"
                       " AND i.state<>'DELETED' AND (?3 = 0 OR i.is_primary = 1) ORDER BY i.id",
    [ST_V_INSERT] = "INSERT INTO version(" V_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    [ST_V_UPDATE] = "UPDATE version SET state=?4, workflow_status=?5, message=?6, forced=?7,"
                    " updated_at=?9 WHERE imageset_id=?1 AND version=?2",
    [ST_V_GET] = "SELECT " V_COLS " FROM version WHERE imageset_id=?1 AND version=?2",
    [ST_V_LIST] = "SELECT " V_COLS " FROM version WHERE imageset_id=?1 AND version < ?2"
                  " ORDER BY version DESC LIMIT ?3",
    [ST_V_SCAN] = "SELECT " V_COLS " FROM version ORDER BY imageset_id, version",
    [ST_C_PUT] = "INSERT OR IGNORE INTO chunk(hash, kind, ulen, crc, data) VALUES(?1,?2,?3,?4,?5)",
    [ST_C_GET] = "SELECT kind, ulen, crc, data FROM chunk WHERE hash=?1",
    [ST_C_SCAN] = "SELECT hash, kind, ulen, crc, data FROM chunk ORDER BY hash",
    [ST_C_STATS] = "SELECT count(*), coalesce(sum(length(data)) + 32 * count(*), 0) FROM chunk",
    [ST_S_PUT] = "INSERT OR REPLACE INTO search(" S_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
                 "?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23)",
    [ST_S_GET] = "SELECT " S_COLS " FROM search WHERE imageset_id=?1",
    [ST_S_DELETE] = "DELETE FROM search WHERE imageset_id=?1",
    [ST_F_PUT] = "INSERT OR REPLACE INTO frame(imageset_id, frame_id, transfer_syntax)"
                 " VALUES(?1,?2,?3)",
    [ST_F_GET] = "SELECT imageset_id, frame_id, transfer_syntax FROM frame"
                 " WHERE imageset_id=?1 AND frame_id=?2",
    [ST_F_COPY] = "INSERT OR IGNORE INTO frame(imageset_id, frame_id, transfer_syntax)"
                  " SELECT ?2, frame_id, transfer_syntax FROM frame WHERE imageset_id=?1",
    [ST_F_DELETE_SET] = "DELETE FROM frame WHERE imageset_id=?1",
    [ST_F_BACKFILL_NEXT] = "SELECT imageset_id FROM frame_backfill ORDER BY imageset_id LIMIT 1",
    [ST_F_BACKFILL_DONE] = "DELETE FROM frame_backfill WHERE imageset_id=?1",
    [ST_J_INSERT] = "INSERT INTO job(" J_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [ST_J_UPDATE] = "UPDATE job SET datastore_id=?2, name=?3, status=?4, role_arn=?5,"
                    " input_uri=?6, output_uri=?7, message=?8, client_token=?9,"
                    " submitted_at=?10, ended_at=?11 WHERE id=?1",
    [ST_J_GET] = "SELECT " J_COLS " FROM job WHERE id=?1",
    /* Newest first; the cursor is the (submitted_at, id) of the last row returned. */
    [ST_J_LIST] = "SELECT " J_COLS " FROM job WHERE datastore_id=?1 AND (?2 IS NULL OR status=?2)"
                  " AND (?3 IS NULL OR (submitted_at, id) < (SELECT submitted_at, id FROM job"
                  " WHERE id=?3)) ORDER BY submitted_at DESC, id DESC LIMIT ?4",
};

/* Search statements differ by query shape (which filters, which sort, a cursor or not); each
 * connection keeps the last few it prepared, keyed by their SQL text. */
#define SEARCH_CACHE 24

struct sq_cached {
    char *sql;
    sqlite3_stmt *st;
};

/* Transaction control, prepared once per connection like the other statements (every write
 * transaction runs four of them). */
enum ctl_id {
    CTL_BEGIN,
    CTL_BEGIN_IMMEDIATE,
    CTL_COMMIT,
    CTL_ROLLBACK,
    CTL_SAVEPOINT,
    CTL_RELEASE,
    CTL_ROLLBACK_TO,
    CTL_COUNT
};
static const char *const ctl_sql[CTL_COUNT] = {
    [CTL_BEGIN] = "BEGIN",
    [CTL_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [CTL_COMMIT] = "COMMIT",
    [CTL_ROLLBACK] = "ROLLBACK",
    [CTL_SAVEPOINT] = "SAVEPOINT ahl_tx",
    [CTL_RELEASE] = "RELEASE ahl_tx",
    [CTL_ROLLBACK_TO] = "ROLLBACK TO ahl_tx",
};

struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3_stmt *ctl[CTL_COUNT];
    struct sq_cached search[SEARCH_CACHE];
    unsigned search_next; /* the slot replaced next when the cache is full */
    struct sq_conn *next; /* in the idle list */
};

/* How a write transaction's own writes are undone on rollback (see "Group commit"). */
enum sq_undo {
    UNDO_ALL,       /* it opened the SQLite transaction: ROLLBACK (nothing else is in it yet) */
    UNDO_SAVEPOINT, /* a later member: ROLLBACK TO its savepoint */
    UNDO_NOTHING,   /* its savepoint could not be opened: it wrote nothing */
};

struct sq_tx {
    struct ahl_store_tx base;
    struct sq_conn *conn;
    struct sq_store *owner;
    enum sq_undo undo; /* write transactions */
};

/* WAL frames (4 KB pages) that wake the checkpointer: ~40 MB, under journal_size_limit. A hot
 * page rewritten by many commits is copied back once per checkpoint, so fewer, larger
 * checkpoints cost less per commit (1,000 frames: ~179 us CPU per update in the one-thread
 * update benchmark; 10,000: ~148-159 us). */
#define CKPT_FRAMES 10000

/* The WAL's size bound (~46 MB of 4 KB frames, under journal_size_limit's 64 MB): past it the
 * checkpointer runs a TRUNCATE checkpoint. It leaves room for the frames written while a passive
 * checkpoint started at CKPT_FRAMES runs and the writer restarts the WAL after it. */
#define WAL_MAX_FRAMES (CKPT_FRAMES + CKPT_FRAMES / 8)

/* How long a TRUNCATE checkpoint waits for readers (and another process's writer) before giving
 * up; new writers of this process wait as long. Read transactions are short (no request keeps
 * one open while it waits on its client), so this is rarely spent. */
#define CKPT_WAIT_MS 500

/* After a TRUNCATE checkpoint timed out, the frames written before it is tried again, so that a
 * long reader costs writers one wait per ~4 MB of WAL, not one per commit. */
#define CKPT_RETRY_FRAMES 1000

/* Group commit bound: a batch is committed once this many write transactions have ended in it,
 * even with writers waiting, so a member waits for at most BATCH_MAX - 1 others. The environment
 * variable AHL_SQLITE_BATCH_MAX (1..BATCH_MAX, read at open) lowers it, e.g. to 1 to measure
 * without group commit. */
#define BATCH_MAX 64

/* A committed write transaction waiting for its batch's COMMIT (lives on its thread's stack). */
struct sq_waiter {
    struct sq_waiter *next;
    int rc;
    bool done;
};

struct sq_store {
    struct ahl_store base;
    /* checkpointer */
    pthread_t ckpt_thread;
    bool ckpt_running, ckpt_wanted, ckpt_stop;
    bool truncate_wanted; /* the WAL is past WAL_MAX_FRAMES */
    bool ckpt_pending;    /* a TRUNCATE waits for the write lock: batches are not handed on */
    int ckpt_log;         /* WAL frames when the last checkpoint ran (0 after the WAL restarted) */
    int wal_frames;       /* WAL frames after the last commit */
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    struct sq_conn *ckpt_conn;
    char *path;     /* the database file, or its read-only URI (see open_read_only) */
    int open_flags; /* SQLITE_OPEN_* of every connection */
    bool read_only; /* opened read-only on a full disk: every write fails with AHL_ENOSPC */
    pthread_mutex_t write_lock; /* held for the whole of a write transaction */
    struct sq_conn *writer;
    /* group commit; batch_lock guards these (taken after write_lock, never before) */
    pthread_mutex_t batch_lock;
    pthread_cond_t batch_cond; /* members' done flags */
    unsigned write_waiting;    /* threads in sq_begin(write) not yet holding write_lock */
    bool batch_open;           /* the writer connection is inside BEGIN IMMEDIATE */
    unsigned batch_txs;        /* write transactions ended in the open batch */
    unsigned batch_max;        /* BATCH_MAX or AHL_SQLITE_BATCH_MAX */
    struct sq_waiter *members; /* committed members waiting for the batch's COMMIT */
    uint64_t stat_commits, stat_txs;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct sq_conn *idle;
    unsigned readers, max_readers;
};

/* The AHL_E* code of a failed SQLite call on db (NULL: none) with result rc. A full disk is
 * AHL_ENOSPC, whether SQLite saw it as such (SQLITE_FULL) or as a failed write or sync whose errno
 * was ENOSPC, so that users are told the disk is full rather than of an I/O error. */
static int sq_code(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return AHL_ECONFLICT;
    case SQLITE_NOMEM:
        return AHL_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return AHL_ECORRUPT;
    case SQLITE_FULL:
        return AHL_ENOSPC;
    case SQLITE_IOERR:
        return db && sqlite3_system_errno(db) == ENOSPC ? AHL_ENOSPC : AHL_EIO;
    case SQLITE_READONLY:
        /* Only a store opened read-only on a full disk has immutable connections. */
        return db && sqlite3_uri_boolean(sqlite3_db_filename(db, "main"), "immutable", 0)
                   ? AHL_ENOSPC
                   : AHL_EIO;
    default:
        return AHL_EIO;
    }
}

static int sq_err(sqlite3 *db, int rc, const char *what)
{
    int code = sq_code(db, rc);
    if (code == AHL_EIO || code == AHL_ENOSPC)
        ahl_error("sqlite: %s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return code;
}

static void conn_close(struct sq_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    for (int i = 0; i < CTL_COUNT; i++)
        sqlite3_finalize(c->ctl[i]);
    for (int i = 0; i < SEARCH_CACHE; i++) {
        sqlite3_finalize(c->search[i].st);
        free(c->search[i].sql);
    }
    sqlite3_close(c->db);
    free(c);
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        ahl_error("sqlite: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        rc = sq_code(db, rc);
        return rc == AHL_ECORRUPT || rc == AHL_ENOSPC ? rc : AHL_EIO;
    }
    return 0;
}

/* Runs a transaction-control statement on c. */
static int ctl(struct sq_conn *c, enum ctl_id id)
{
    int rc;
    if (!c->ctl[id] && (rc = sqlite3_prepare_v3(c->db, ctl_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                                &c->ctl[id], NULL)) != SQLITE_OK)
        return sq_err(c->db, rc, ctl_sql[id]);
    rc = sqlite3_step(c->ctl[id]);
    sqlite3_reset(c->ctl[id]);
    if (rc != SQLITE_DONE) {
        ahl_error("sqlite: %s: %s", ctl_sql[id], sqlite3_errmsg(c->db));
        rc = sq_code(c->db, rc);
        return rc == AHL_ECORRUPT || rc == AHL_ENOSPC ? rc : AHL_EIO;
    }
    return 0;
}

/* Opens a connection to q's database (q->path with q->open_flags: see ahl_store_open_sqlite). */
static int conn_open(const struct sq_store *q, struct sq_conn **out)
{
    struct sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return AHL_ENOMEM;
    int rc = sqlite3_open_v2(q->path, &c->db, q->open_flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_err(c->db, rc, q->path);
        conn_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->db, 10000);
    rc = exec(c->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                     " PRAGMA secure_delete=OFF; PRAGMA journal_size_limit=67108864;"
                     " PRAGMA cache_size=-65536;");
    if (rc < 0) {
        conn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* The cached statement id of conn, reset and with its bindings cleared. */
static sqlite3_stmt *stmt(struct sq_conn *c, enum stmt_id id)
{
    if (!c->st[id]) {
        if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                               NULL) != SQLITE_OK) {
            ahl_error("sqlite: prepare %d: %s", (int)id, sqlite3_errmsg(c->db));
            return NULL;
        }
    } else {
        sqlite3_reset(c->st[id]);
        sqlite3_clear_bindings(c->st[id]);
    }
    return c->st[id];
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

static int migrate(sqlite3 *db)
{
    if (sqlite3_create_function(db, "ahl_study_dt_key", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                sql_study_dt_key, NULL, NULL) != SQLITE_OK)
        return sq_err(db, SQLITE_ERROR, "registering ahl_study_dt_key");
    int rc = exec(db, "PRAGMA journal_mode=WAL; BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = NULL;
    int have = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int want = (int)(sizeof migrations / sizeof migrations[0]);
    if (have > want) {
        ahl_error("sqlite: database schema %d is newer than this program (%d)", have, want);
        exec(db, "ROLLBACK");
        return AHL_EUNSUPPORTED;
    }
    /* Nothing to migrate: end without writing, so that a database on a full disk still opens. */
    if (have == want)
        return exec(db, "COMMIT");
    for (int v = have; v < want; v++) {
        if ((rc = exec(db, migrations[v])) < 0) {
            exec(db, "ROLLBACK");
            return rc;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d; COMMIT", want);
    if ((rc = exec(db, sql)) < 0)
        exec(db, "ROLLBACK");
    return rc;
}

/* Decides, under ckpt_lock, which checkpoint the WAL needs now and wakes the checkpointer for it.
 * Frames are counted since the last checkpoint, not in the WAL: while readers keep the WAL from
 * restarting it stays over CKPT_FRAMES, and waking the checkpointer on every commit then ran
 * back-to-back checkpoints (each with an fdatasync) for a few frames each, a third of a core
 * under an update load. */
static void ckpt_decide(struct sq_store *q)
{
    int since = q->wal_frames - q->ckpt_log;
    q->ckpt_wanted = since >= CKPT_FRAMES;
    q->truncate_wanted = q->wal_frames >= WAL_MAX_FRAMES && since >= CKPT_RETRY_FRAMES;
    if (q->ckpt_wanted || q->truncate_wanted)
        pthread_cond_signal(&q->ckpt_cond);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct sq_store *q = arg;
    (void)db;
    (void)name;
    pthread_mutex_lock(&q->ckpt_lock);
    if (frames < q->ckpt_log)
        q->ckpt_log = 0; /* the WAL restarted from its beginning */
    q->wal_frames = frames;
    ckpt_decide(q);
    pthread_mutex_unlock(&q->ckpt_lock);
    return SQLITE_OK;
}

/* Runs a TRUNCATE checkpoint holding the write lock, so that no write transaction of this process
 * is open meanwhile and the checkpoint waits only for readers (the batch open when it asks is
 * committed, not handed on: see write_end). The checkpoint connection's busy timeout
 * (CKPT_WAIT_MS) bounds the wait. Returns SQLite's result; *nlog receives the WAL frames left. */
static int ckpt_truncate(struct sq_store *q, int *nlog)
{
    pthread_mutex_lock(&q->write_lock);
    pthread_mutex_lock(&q->batch_lock);
    q->ckpt_pending = true;
    while (q->batch_open) {
        /* A batch was handed to a waiting writer, who will now commit it and wake us. */
        pthread_mutex_unlock(&q->write_lock);
        pthread_cond_wait(&q->batch_cond, &q->batch_lock);
        pthread_mutex_unlock(&q->batch_lock);
        pthread_mutex_lock(&q->write_lock);
        pthread_mutex_lock(&q->batch_lock);
    }
    q->ckpt_pending = false;
    pthread_mutex_unlock(&q->batch_lock);
    int ckpt = 0;
    int rc =
        sqlite3_wal_checkpoint_v2(q->ckpt_conn->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, nlog, &ckpt);
    pthread_mutex_unlock(&q->write_lock);
    if (rc == SQLITE_BUSY)
        ahl_warn("sqlite: the WAL holds %d frames and readers kept it from being truncated for "
                 "%d ms; retrying later",
                 *nlog, CKPT_WAIT_MS);
    return rc;
}

static void *checkpointer(void *arg)
{
    struct sq_store *q = arg;
    pthread_mutex_lock(&q->ckpt_lock);
    while (!q->ckpt_stop) {
        if (!q->ckpt_wanted && !q->truncate_wanted) {
            pthread_cond_wait(&q->ckpt_cond, &q->ckpt_lock);
            continue;
        }
        bool truncate = q->truncate_wanted;
        pthread_mutex_unlock(&q->ckpt_lock);
        int nlog = -1, ckpt = -1, rc = SQLITE_OK;
        if (!truncate) {
            rc = sqlite3_wal_checkpoint_v2(q->ckpt_conn->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog,
                                           &ckpt);
            /* Frames a reader still needed were left behind (or a reader of the database file
             * alone kept the checkpoint from starting: BUSY): the WAL cannot start over until a
             * checkpoint waits for those readers. */
            truncate = rc == SQLITE_BUSY || (rc == SQLITE_OK && ckpt < nlog);
        }
        if (truncate)
            rc = ckpt_truncate(q, &nlog);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            ahl_warn("sqlite: checkpoint: %s", sqlite3_errmsg(q->ckpt_conn->db));
        pthread_mutex_lock(&q->ckpt_lock);
        /* The commits that arrived meanwhile asked for checkpoints against the old count; decide
         * again against this one. Without a count, wait for new frames before trying again. */
        q->ckpt_log = nlog >= 0 ? nlog : q->wal_frames;
        if (q->wal_frames < q->ckpt_log)
            q->wal_frames = q->ckpt_log;
        ckpt_decide(q);
    }
    pthread_mutex_unlock(&q->ckpt_lock);
    return NULL;
}

static void sq_close(struct ahl_store *s)
{
    struct sq_store *q = (struct sq_store *)s;
    if (q->ckpt_running) {
        pthread_mutex_lock(&q->ckpt_lock);
        q->ckpt_stop = true;
        pthread_cond_signal(&q->ckpt_cond);
        pthread_mutex_unlock(&q->ckpt_lock);
        pthread_join(q->ckpt_thread, NULL);
    }
    conn_close(q->ckpt_conn);
    pthread_mutex_destroy(&q->ckpt_lock);
    pthread_cond_destroy(&q->ckpt_cond);
    conn_close(q->writer);
    while (q->idle) {
        struct sq_conn *c = q->idle;
        q->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&q->write_lock);
    pthread_mutex_destroy(&q->batch_lock);
    pthread_cond_destroy(&q->batch_cond);
    pthread_mutex_destroy(&q->pool_lock);
    pthread_cond_destroy(&q->pool_cond);
    free(q->path);
    free(q);
}

/* Ends a write transaction (see "Group commit" at the top): releases or rolls back its
 * savepoint (has_sp: the savepoint was opened), then hands the open SQLite transaction to a
 * waiting writer or COMMITs the batch. Returns the transaction's result: for a commit, 0 once
 * the batch's COMMIT succeeded; otherwise rc as given. Frees tx. */
static int write_end(struct sq_tx *tx, bool commit, int rc)
{
    struct sq_store *q = tx->owner;
    struct sq_conn *c = tx->conn;
    sqlite3 *db = c->db;
    for (int i = 0; i < ST_COUNT; i++)
        if (tx->conn->st[i])
            sqlite3_reset(tx->conn->st[i]);
    if (commit && tx->undo == UNDO_SAVEPOINT && (rc = ctl(c, CTL_RELEASE)) < 0)
        commit = false;
    if (!commit && !sqlite3_get_autocommit(db)) {
        if (tx->undo == UNDO_ALL)
            ctl(c, CTL_ROLLBACK);
        else if (tx->undo == UNDO_SAVEPOINT &&
                 (ctl(c, CTL_ROLLBACK_TO) < 0 || ctl(c, CTL_RELEASE) < 0))
            ctl(c, CTL_ROLLBACK); /* cannot undo just this one: the whole batch fails below */
    }
    /* The SQLite transaction is over: rolled back above when it held only this transaction, or
     * ended by SQLite itself after some errors (I/O, full disk, memory), when the batch's
     * members (and this one, if committing) are lost and fail. */
    bool ended = sqlite3_get_autocommit(db);
    pthread_mutex_lock(&q->batch_lock);
    q->batch_txs++;
    if (!ended && q->write_waiting > 0 && q->batch_txs < q->batch_max && !q->ckpt_pending) {
        /* Hand the open transaction to the next writer. */
        if (commit) {
            struct sq_waiter w = {q->members, 0, false};
            q->members = &w;
            pthread_mutex_unlock(&q->write_lock);
            while (!w.done)
                pthread_cond_wait(&q->batch_cond, &q->batch_lock);
            rc = w.rc;
        } else {
            pthread_mutex_unlock(&q->write_lock);
        }
        pthread_mutex_unlock(&q->batch_lock);
        free(tx);
        return rc;
    }
    pthread_mutex_unlock(&q->batch_lock);
    int crc = 0;
    if (!ended && (crc = ctl(c, CTL_COMMIT)) < 0 && !sqlite3_get_autocommit(db))
        ctl(c, CTL_ROLLBACK);
    if (ended && (commit || q->members)) {
        ahl_error("sqlite: the write transaction was abandoned; its batch is lost");
        /* Say why, when SQLite gave up for a full disk. */
        crc = sq_code(db, sqlite3_errcode(db)) == AHL_ENOSPC ? AHL_ENOSPC : AHL_EIO;
    }
    pthread_mutex_lock(&q->batch_lock);
    uint64_t n = commit ? 1 : 0;
    for (struct sq_waiter *w = q->members; w; w = w->next) {
        w->rc = crc;
        w->done = true;
        n++;
    }
    if (crc == 0 && n) {
        q->stat_commits++;
        q->stat_txs += n;
    }
    q->members = NULL;
    q->batch_open = false;
    pthread_cond_broadcast(&q->batch_cond);
    pthread_mutex_unlock(&q->batch_lock);
    pthread_mutex_unlock(&q->write_lock);
    free(tx);
    return commit ? crc : rc;
}

static int sq_begin(struct ahl_store *s, bool write, struct ahl_store_tx **out)
{
    struct sq_store *q = (struct sq_store *)s;
    struct sq_tx *tx = calloc(1, sizeof *tx);
    int rc;
    if (!tx)
        return AHL_ENOMEM;
    /* A read-only store (open_read_only) runs write transactions as read transactions: one that
     * finds nothing to write succeeds, the first write fails with AHL_ENOSPC (sq_code). */
    if (q->read_only)
        write = false;
    tx->base.store = s;
    tx->base.write = write;
    tx->owner = q;
    if (write) {
        pthread_mutex_lock(&q->batch_lock);
        q->write_waiting++;
        pthread_mutex_unlock(&q->batch_lock);
        pthread_mutex_lock(&q->write_lock);
        pthread_mutex_lock(&q->batch_lock);
        q->write_waiting--;
        bool open = q->batch_open;
        pthread_mutex_unlock(&q->batch_lock);
        tx->conn = q->writer;
        if (!open) {
            if ((rc = ctl(tx->conn, CTL_BEGIN_IMMEDIATE)) < 0) {
                pthread_mutex_unlock(&q->write_lock);
                free(tx);
                return rc;
            }
            pthread_mutex_lock(&q->batch_lock);
            q->batch_open = true;
            q->batch_txs = 0;
            pthread_mutex_unlock(&q->batch_lock);
            /* The batch's first transaction needs no savepoint: undoing it is ROLLBACK. A
             * savepoint would make SQLite keep a statement journal of every page it changes. */
            tx->undo = UNDO_ALL;
        } else if ((rc = ctl(tx->conn, CTL_SAVEPOINT)) < 0) {
            tx->undo = UNDO_NOTHING;
            write_end(tx, false, rc);
            return rc;
        } else {
            tx->undo = UNDO_SAVEPOINT;
        }
    } else {
        pthread_mutex_lock(&q->pool_lock);
        while (!q->idle && q->readers >= q->max_readers)
            pthread_cond_wait(&q->pool_cond, &q->pool_lock);
        if (q->idle) {
            tx->conn = q->idle;
            q->idle = tx->conn->next;
        } else {
            q->readers++;
        }
        pthread_mutex_unlock(&q->pool_lock);
        if (!tx->conn && (rc = conn_open(q, &tx->conn)) < 0) {
            pthread_mutex_lock(&q->pool_lock);
            q->readers--;
            pthread_cond_signal(&q->pool_cond);
            pthread_mutex_unlock(&q->pool_lock);
            free(tx);
            return rc;
        }
        if ((rc = ctl(tx->conn, CTL_BEGIN)) < 0) {
            conn_close(tx->conn);
            pthread_mutex_lock(&q->pool_lock);
            q->readers--;
            pthread_cond_signal(&q->pool_cond);
            pthread_mutex_unlock(&q->pool_lock);
            free(tx);
            return rc;
        }
    }
    *out = &tx->base;
    return 0;
}

/* Ends tx after COMMIT or ROLLBACK: gives the connection back. */
static void tx_end(struct sq_tx *tx)
{
    struct sq_store *q = tx->owner;
    for (int i = 0; i < ST_COUNT; i++)
        if (tx->conn->st[i])
            sqlite3_reset(tx->conn->st[i]);
    if (tx->base.write) {
        pthread_mutex_unlock(&q->write_lock);
    } else {
        pthread_mutex_lock(&q->pool_lock);
        tx->conn->next = q->idle;
        q->idle = tx->conn;
        pthread_cond_signal(&q->pool_cond);
        pthread_mutex_unlock(&q->pool_lock);
    }
    free(tx);
}

static void sq_rollback(struct ahl_store_tx *t)
{
    struct sq_tx *tx = (struct sq_tx *)t;
    if (tx->base.write) {
        write_end(tx, false, 0);
        return;
    }
    for (int i = 0; i < ST_COUNT; i++)
        if (tx->conn->st[i])
            sqlite3_reset(tx->conn->st[i]);
    if (!sqlite3_get_autocommit(tx->conn->db))
        ctl(tx->conn, CTL_ROLLBACK);
    tx_end(tx);
}

static int sq_commit(struct ahl_store_tx *t)
{
    struct sq_tx *tx = (struct sq_tx *)t;
    if (tx->base.write)
        return write_end(tx, true, 0);
    for (int i = 0; i < ST_COUNT; i++)
        if (tx->conn->st[i])
            sqlite3_reset(tx->conn->st[i]);
    int rc = ctl(tx->conn, CTL_COMMIT);
    if (rc < 0) {
        sq_rollback(t);
        return rc;
    }
    tx_end(tx);
    return 0;
}

/* ---- binding and reading helpers ---------------------------------------------------------- */

#define CONN(t) (((struct sq_tx *)(t))->conn)

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    size_t n = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Steps a statement that returns no rows. */
static int step_done(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return sq_err(c->db, rc, what);
    return 0;
}

/* Steps a statement expected to change exactly one row (AHL_ENOTFOUND otherwise). */
static int step_one_change(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
    int rc = step_done(c, st, what);
    if (rc == 0 && sqlite3_changes(c->db) != 1)
        rc = AHL_ENOTFOUND;
    return rc;
}

#define PREP(st, conn, id)             \
    sqlite3_stmt *st = stmt(conn, id); \
    if (!st)                           \
        return AHL_EIO;

/* Steps a query returning rows, calling rowfn(st, rec) and cb(ctx, rec) for each. */
#define FOR_ROWS(conn, st, rec, rowfn, cb, ctx, what)   \
    do {                                                \
        int r_;                                         \
        while ((r_ = sqlite3_step(st)) == SQLITE_ROW) { \
            rowfn(st, &(rec));                          \
            int u_ = cb(ctx, &(rec));                   \
            if (u_) {                                   \
                sqlite3_reset(st);                      \
                return u_;                              \
            }                                           \
        }                                               \
        if (r_ != SQLITE_DONE)                          \
            return sq_err((conn)->db, r_, what);        \
        return 0;                                       \
    } while (0)

/* Steps a query expected to return at most one row into *out: 0, or AHL_ENOTFOUND. */
#define ONE_ROW(conn, st, rowfn, out, what)                                      \
    do {                                                                         \
        int r_ = sqlite3_step(st);                                               \
        if (r_ == SQLITE_ROW) {                                                  \
            rowfn(st, out);                                                      \
            sqlite3_reset(st);                                                   \
            return 0;                                                            \
        }                                                                        \
        return r_ == SQLITE_DONE ? AHL_ENOTFOUND : sq_err((conn)->db, r_, what); \
    } while (0)

/* ---- data stores -------------------------------------------------------------------------- */

static void ds_row(sqlite3_stmt *st, struct ahl_datastore_rec *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->id, sizeof r->id);
    col_text(st, 1, r->name, sizeof r->name);
    col_text(st, 2, r->status, sizeof r->status);
    col_text(st, 3, r->kms_key_arn, sizeof r->kms_key_arn);
    col_text(st, 4, r->lambda_authorizer_arn, sizeof r->lambda_authorizer_arn);
    col_text(st, 5, r->lossless_storage_format, sizeof r->lossless_storage_format);
    r->created_at_ms = sqlite3_column_int64(st, 6);
    r->updated_at_ms = sqlite3_column_int64(st, 7);
}

static int sq_datastore_put(struct ahl_store_tx *t, const struct ahl_datastore_rec *r, bool create)
{
    PREP(st, CONN(t), create ? ST_DS_INSERT : ST_DS_UPDATE);
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->name);
    bind_text(st, 3, r->status);
    bind_text(st, 4, r->kms_key_arn);
    bind_text(st, 5, r->lambda_authorizer_arn);
    bind_text(st, 6, r->lossless_storage_format);
    sqlite3_bind_int64(st, 7, r->created_at_ms);
    sqlite3_bind_int64(st, 8, r->updated_at_ms);
    return create ? step_done(CONN(t), st, "datastore insert")
                  : step_one_change(CONN(t), st, "datastore update");
}

static int sq_datastore_get(struct ahl_store_tx *t, const char *id, struct ahl_datastore_rec *out)
{
    PREP(st, CONN(t), ST_DS_GET);
    bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, ds_row, out, "datastore get");
}

static int sq_datastore_list(struct ahl_store_tx *t, const char *status, const char *after_id,
                             unsigned limit, ahl_store_datastore_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_DS_LIST);
    struct ahl_datastore_rec rec;
    bind_text(st, 1, after_id);
    bind_opt_text(st, 2, status);
    sqlite3_bind_int64(st, 3, limit);
    FOR_ROWS(CONN(t), st, rec, ds_row, cb, ctx, "datastore list");
}

static int sq_datastore_delete(struct ahl_store_tx *t, const char *id)
{
    PREP(st, CONN(t), ST_DS_DELETE);
    bind_text(st, 1, id);
    return step_one_change(CONN(t), st, "datastore delete");
}

static int sq_datastore_count_imagesets(struct ahl_store_tx *t, const char *id, uint64_t *out)
{
    PREP(st, CONN(t), ST_DS_COUNT);
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return sq_err(CONN(t)->db, rc, "datastore count");
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

/* ---- tags --------------------------------------------------------------------------------- */

static int sq_tag_put(struct ahl_store_tx *t, const char *arn, const char *key, const char *value)
{
    PREP(st, CONN(t), ST_TAG_PUT);
    bind_text(st, 1, arn);
    bind_text(st, 2, key);
    bind_text(st, 3, value);
    return step_done(CONN(t), st, "tag put");
}

static int sq_tag_delete(struct ahl_store_tx *t, const char *arn, const char *key)
{
    PREP(st, CONN(t), ST_TAG_DELETE);
    bind_text(st, 1, arn);
    bind_text(st, 2, key);
    return step_done(CONN(t), st, "tag delete");
}

static int sq_tag_list(struct ahl_store_tx *t, const char *arn, ahl_store_tag_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_TAG_LIST);
    bind_text(st, 1, arn);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int u = cb(ctx, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1));
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    return rc == SQLITE_DONE ? 0 : sq_err(CONN(t)->db, rc, "tag list");
}

static int sq_tag_delete_all(struct ahl_store_tx *t, const char *arn)
{
    PREP(st, CONN(t), ST_TAG_DELETE_ALL);
    bind_text(st, 1, arn);
    return step_done(CONN(t), st, "tag delete all");
}

/* ---- image sets --------------------------------------------------------------------------- */

static void is_row(sqlite3_stmt *st, struct ahl_imageset_rec *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->id, sizeof r->id);
    col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    col_text(st, 2, r->state, sizeof r->state);
    col_text(st, 3, r->workflow_status, sizeof r->workflow_status);
    col_text(st, 4, r->message, sizeof r->message);
    r->is_primary = sqlite3_column_int(st, 5) != 0;
    r->latest_version = (uint64_t)sqlite3_column_int64(st, 6);
    r->created_at_ms = sqlite3_column_int64(st, 7);
    r->updated_at_ms = sqlite3_column_int64(st, 8);
    r->last_accessed_at_ms = sqlite3_column_int64(st, 9);
    r->deleted_at_ms = sqlite3_column_int64(st, 10);
}

static void is_bind(sqlite3_stmt *st, const struct ahl_imageset_rec *r)
{
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->datastore_id);
    bind_text(st, 3, r->state);
    bind_text(st, 4, r->workflow_status);
    bind_text(st, 5, r->message);
    sqlite3_bind_int(st, 6, r->is_primary);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)r->latest_version);
    sqlite3_bind_int64(st, 8, r->created_at_ms);
    sqlite3_bind_int64(st, 9, r->updated_at_ms);
    sqlite3_bind_int64(st, 10, r->last_accessed_at_ms);
    sqlite3_bind_int64(st, 11, r->deleted_at_ms);
}

static int sq_imageset_put(struct ahl_store_tx *t, const struct ahl_imageset_rec *r, bool create)
{
    PREP(st, CONN(t), create ? ST_IS_INSERT : ST_IS_UPDATE);
    is_bind(st, r);
    return create ? step_done(CONN(t), st, "imageset insert")
                  : step_one_change(CONN(t), st, "imageset update");
}

static int sq_imageset_advance(struct ahl_store_tx *t, const struct ahl_imageset_rec *r,
                               uint64_t expected)
{
    PREP(st, CONN(t), ST_IS_ADVANCE);
    is_bind(st, r);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)expected);
    int rc = step_one_change(CONN(t), st, "imageset advance");
    return rc == AHL_ENOTFOUND ? AHL_ECONFLICT : rc;
}

static int imageset_get_any(struct ahl_store_tx *t, const char *id, struct ahl_imageset_rec *out)
{
    PREP(st, CONN(t), ST_IS_GET);
    bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, is_row, out, "imageset get");
}

static int sq_imageset_get(struct ahl_store_tx *t, const char *ds, const char *id,
                           struct ahl_imageset_rec *out)
{
    int rc = imageset_get_any(t, id, out);
    return rc == 0 && ds && strcmp(ds, out->datastore_id) != 0 ? AHL_ENOTFOUND : rc;
}

static int sq_imageset_list(struct ahl_store_tx *t, const char *ds, const char *after_id,
                            unsigned limit, ahl_store_imageset_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_IS_LIST);
    struct ahl_imageset_rec rec;
    bind_text(st, 1, ds);
    bind_text(st, 2, after_id);
    sqlite3_bind_int64(st, 3, limit);
    FOR_ROWS(CONN(t), st, rec, is_row, cb, ctx, "imageset list");
}

static int sq_imageset_by_study(struct ahl_store_tx *t, const char *ds, const char *study,
                                bool primary_only, ahl_store_imageset_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_IS_BY_STUDY);
    struct ahl_imageset_rec rec;
    bind_text(st, 1, ds);
    bind_text(st, 2, study);
    sqlite3_bind_int(st, 3, primary_only);
    FOR_ROWS(CONN(t), st, rec, is_row, cb, ctx, "imageset by study");
}

/* ---- versions ----------------------------------------------------------------------------- */

static void v_row(sqlite3_stmt *st, struct ahl_version_rec *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    r->version = (uint64_t)sqlite3_column_int64(st, 1);
    if (sqlite3_column_bytes(st, 2) == AHL_SHA256_LEN)
        memcpy(r->root, sqlite3_column_blob(st, 2), AHL_SHA256_LEN);
    col_text(st, 3, r->state, sizeof r->state);
    col_text(st, 4, r->workflow_status, sizeof r->workflow_status);
    col_text(st, 5, r->message, sizeof r->message);
    r->forced = sqlite3_column_int(st, 6) != 0;
    r->created_at_ms = sqlite3_column_int64(st, 7);
    r->updated_at_ms = sqlite3_column_int64(st, 8);
}

static void v_bind(sqlite3_stmt *st, const struct ahl_version_rec *r)
{
    bind_text(st, 1, r->imageset_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->version);
    sqlite3_bind_blob(st, 3, r->root, AHL_SHA256_LEN, SQLITE_STATIC);
    bind_text(st, 4, r->state);
    bind_text(st, 5, r->workflow_status);
    bind_text(st, 6, r->message);
    sqlite3_bind_int(st, 7, r->forced);
    sqlite3_bind_int64(st, 8, r->created_at_ms);
    sqlite3_bind_int64(st, 9, r->updated_at_ms);
}

static int sq_version_put(struct ahl_store_tx *t, const struct ahl_version_rec *r)
{
    PREP(st, CONN(t), ST_V_INSERT);
    v_bind(st, r);
    return step_done(CONN(t), st, "version insert");
}

static int sq_version_update(struct ahl_store_tx *t, const struct ahl_version_rec *r)
{
    PREP(st, CONN(t), ST_V_UPDATE);
    v_bind(st, r);
    return step_one_change(CONN(t), st, "version update");
}

static int sq_version_get(struct ahl_store_tx *t, const char *id, uint64_t version,
                          struct ahl_version_rec *out)
{
    PREP(st, CONN(t), ST_V_GET);
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)version);
    ONE_ROW(CONN(t), st, v_row, out, "version get");
}

static int sq_version_list(struct ahl_store_tx *t, const char *id, uint64_t below, unsigned limit,
                           ahl_store_version_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_V_LIST);
    struct ahl_version_rec rec;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, below ? (sqlite3_int64)below : INT64_MAX);
    sqlite3_bind_int64(st, 3, limit);
    FOR_ROWS(CONN(t), st, rec, v_row, cb, ctx, "version list");
}

static int sq_version_scan(struct ahl_store_tx *t, ahl_store_version_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_V_SCAN);
    struct ahl_version_rec rec;
    FOR_ROWS(CONN(t), st, rec, v_row, cb, ctx, "version scan");
}

/* ---- chunks ------------------------------------------------------------------------------- */

static int sq_chunk_put(struct ahl_store_tx *t, const struct ahl_chunk *c)
{
    PREP(st, CONN(t), ST_C_PUT);
    sqlite3_bind_blob(st, 1, c->hash, AHL_SHA256_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, c->kind);
    sqlite3_bind_int64(st, 3, c->ulen);
    sqlite3_bind_int64(st, 4, c->crc);
    sqlite3_bind_blob64(st, 5, c->len ? c->data : "", c->len, SQLITE_STATIC);
    return step_done(CONN(t), st, "chunk put");
}

static int sq_chunk_get(struct ahl_store_tx *t, const uint8_t hash[AHL_SHA256_LEN],
                        struct ahl_chunk *meta, struct ahl_buf *data)
{
    PREP(st, CONN(t), ST_C_GET);
    sqlite3_bind_blob(st, 1, hash, AHL_SHA256_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? AHL_ENOTFOUND : sq_err(CONN(t)->db, rc, "chunk get");
    memcpy(meta->hash, hash, AHL_SHA256_LEN);
    meta->kind = sqlite3_column_int(st, 0);
    meta->ulen = (uint32_t)sqlite3_column_int64(st, 1);
    meta->crc = (uint32_t)sqlite3_column_int64(st, 2);
    const void *p = sqlite3_column_blob(st, 3);
    size_t n = (size_t)sqlite3_column_bytes(st, 3);
    size_t off = data->len;
    rc = ahl_buf_add(data, p, n);
    sqlite3_reset(st);
    if (rc < 0)
        return rc;
    meta->data = data->data + off;
    meta->len = n;
    return 0;
}

static int sq_chunk_scan(struct ahl_store_tx *t, ahl_store_chunk_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_C_SCAN);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ahl_chunk c;
        memset(&c, 0, sizeof c);
        if (sqlite3_column_bytes(st, 0) == AHL_SHA256_LEN)
            memcpy(c.hash, sqlite3_column_blob(st, 0), AHL_SHA256_LEN);
        c.kind = sqlite3_column_int(st, 1);
        c.ulen = (uint32_t)sqlite3_column_int64(st, 2);
        c.crc = (uint32_t)sqlite3_column_int64(st, 3);
        c.data = sqlite3_column_blob(st, 4);
        c.len = (size_t)sqlite3_column_bytes(st, 4);
        int u = cb(ctx, &c);
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    return rc == SQLITE_DONE ? 0 : sq_err(CONN(t)->db, rc, "chunk scan");
}

static int sq_chunk_stats(struct ahl_store_tx *t, uint64_t *count, uint64_t *bytes)
{
    PREP(st, CONN(t), ST_C_STATS);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return sq_err(CONN(t)->db, rc, "chunk stats");
    *count = (uint64_t)sqlite3_column_int64(st, 0);
    *bytes = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return 0;
}

/* ---- search index ------------------------------------------------------------------------- */

static void s_row(sqlite3_stmt *st, struct ahl_search_row *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    r->is_primary = sqlite3_column_int(st, 2) != 0;
    r->version = (uint64_t)sqlite3_column_int64(st, 3);
    r->created_at_ms = sqlite3_column_int64(st, 4);
    r->updated_at_ms = sqlite3_column_int64(st, 5);
    col_text(st, 6, r->patient_id, sizeof r->patient_id);
    col_text(st, 7, r->patient_name, sizeof r->patient_name);
    col_text(st, 8, r->patient_birth_date, sizeof r->patient_birth_date);
    col_text(st, 9, r->patient_sex, sizeof r->patient_sex);
    col_text(st, 10, r->study_instance_uid, sizeof r->study_instance_uid);
    col_text(st, 11, r->study_id, sizeof r->study_id);
    col_text(st, 12, r->study_description, sizeof r->study_description);
    col_text(st, 13, r->accession_number, sizeof r->accession_number);
    col_text(st, 14, r->study_date, sizeof r->study_date);
    col_text(st, 15, r->study_time, sizeof r->study_time);
    col_text(st, 16, r->series_instance_uid, sizeof r->series_instance_uid);
    col_text(st, 17, r->modality, sizeof r->modality);
    col_text(st, 18, r->body_part_examined, sizeof r->body_part_examined);
    r->has_series_number = sqlite3_column_type(st, 19) != SQLITE_NULL;
    r->series_number = sqlite3_column_int(st, 19);
    r->number_of_series = (uint32_t)sqlite3_column_int64(st, 20);
    r->number_of_instances = (uint32_t)sqlite3_column_int64(st, 21);
    col_text(st, 22, r->study_dt, sizeof r->study_dt);
}

static sqlite3_stmt *search_stmt(struct sq_conn *c, const char *sql);

/* Binds a whole search row to a statement numbered like ST_S_PUT (?1..?23, S_COLS order). A
 * narrower UPDATE (search_update) names only some of the numbers; binding the others fails with
 * SQLITE_RANGE, which is harmless and ignored. */
static void s_bind(sqlite3_stmt *st, const struct ahl_search_row *r, const char *study_dt)
{
    bind_text(st, 1, r->imageset_id);
    bind_text(st, 2, r->datastore_id);
    sqlite3_bind_int(st, 3, r->is_primary);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->version);
    sqlite3_bind_int64(st, 5, r->created_at_ms);
    sqlite3_bind_int64(st, 6, r->updated_at_ms);
    bind_text(st, 7, r->patient_id);
    bind_text(st, 8, r->patient_name);
    bind_text(st, 9, r->patient_birth_date);
    bind_text(st, 10, r->patient_sex);
    bind_text(st, 11, r->study_instance_uid);
    bind_text(st, 12, r->study_id);
    bind_text(st, 13, r->study_description);
    bind_text(st, 14, r->accession_number);
    bind_text(st, 15, r->study_date);
    bind_text(st, 16, r->study_time);
    bind_text(st, 17, r->series_instance_uid);
    bind_text(st, 18, r->modality);
    bind_text(st, 19, r->body_part_examined);
    if (r->has_series_number)
        sqlite3_bind_int(st, 20, r->series_number);
    else
        sqlite3_bind_null(st, 20);
    sqlite3_bind_int64(st, 21, r->number_of_series);
    sqlite3_bind_int64(st, 22, r->number_of_instances);
    sqlite3_bind_text(st, 23, study_dt, -1, SQLITE_STATIC);
}

/* Rewrites only the columns of an existing search row that differ from *old: SQLite then
 * touches only the indexes over those columns (an UPDATE keeps the rowid; INSERT OR REPLACE
 * would delete and re-insert the row and every index entry). A new version always changes
 * version and updated_at, so the indexes carrying updated_at are rewritten; the others
 * (created_at, study date-time, the primary key) only when their columns change. */
static int search_update(struct sq_conn *c, const struct ahl_search_row *old,
                         const struct ahl_search_row *r, const char *study_dt)
{
    static const char *const col[] = {NULL,
                                      "imageset_id",
                                      "datastore_id",
                                      "is_primary",
                                      "version",
                                      "created_at",
                                      "updated_at",
                                      "patient_id",
                                      "patient_name",
                                      "patient_birth_date",
                                      "patient_sex",
                                      "study_instance_uid",
                                      "study_id",
                                      "study_description",
                                      "accession_number",
                                      "study_date",
                                      "study_time",
                                      "series_instance_uid",
                                      "modality",
                                      "body_part_examined",
                                      "series_number",
                                      "number_of_series",
                                      "number_of_instances",
                                      "study_dt"};
    bool diff[24] = {false};
    diff[2] = strcmp(old->datastore_id, r->datastore_id) != 0;
    diff[3] = old->is_primary != r->is_primary;
    diff[4] = old->version != r->version;
    diff[5] = old->created_at_ms != r->created_at_ms;
    diff[6] = old->updated_at_ms != r->updated_at_ms;
    diff[7] = strcmp(old->patient_id, r->patient_id) != 0;
    diff[8] = strcmp(old->patient_name, r->patient_name) != 0;
    diff[9] = strcmp(old->patient_birth_date, r->patient_birth_date) != 0;
    diff[10] = strcmp(old->patient_sex, r->patient_sex) != 0;
    diff[11] = strcmp(old->study_instance_uid, r->study_instance_uid) != 0;
    diff[12] = strcmp(old->study_id, r->study_id) != 0;
    diff[13] = strcmp(old->study_description, r->study_description) != 0;
    diff[14] = strcmp(old->accession_number, r->accession_number) != 0;
    diff[15] = strcmp(old->study_date, r->study_date) != 0;
    diff[16] = strcmp(old->study_time, r->study_time) != 0;
    diff[17] = strcmp(old->series_instance_uid, r->series_instance_uid) != 0;
    diff[18] = strcmp(old->modality, r->modality) != 0;
    diff[19] = strcmp(old->body_part_examined, r->body_part_examined) != 0;
    diff[20] = old->has_series_number != r->has_series_number ||
               (r->has_series_number && old->series_number != r->series_number);
    diff[21] = old->number_of_series != r->number_of_series;
    diff[22] = old->number_of_instances != r->number_of_instances;
    diff[23] = strcmp(old->study_dt, study_dt) != 0;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql, "UPDATE search SET ");
    bool any = false;
    for (int i = 2; i < 24; i++) {
        if (!diff[i])
            continue;
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s%s=?%d", any ? ", " : "", col[i], i);
        any = true;
    }
    if (!any)
        return 0; /* the same row: nothing to write */
    snprintf(sql + n, sizeof sql - n, " WHERE imageset_id=?1");
    sqlite3_stmt *st = search_stmt(c, sql);
    if (!st)
        return AHL_EIO;
    s_bind(st, r, study_dt);
    int rc = step_done(c, st, "search update");
    sqlite3_reset(st);
    return rc;
}

static int sq_search_put(struct ahl_store_tx *t, const struct ahl_search_row *r)
{
    char key[AHL_STUDY_DT_KEY_LEN + 1];
    struct ahl_search_row old;
    ahl_store_study_dt_key(r->study_date, r->study_time, key);
    PREP(get, CONN(t), ST_S_GET);
    bind_text(get, 1, r->imageset_id);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        s_row(get, &old);
        sqlite3_reset(get);
        return search_update(CONN(t), &old, r, key);
    }
    sqlite3_reset(get);
    if (rc != SQLITE_DONE)
        return sq_err(CONN(t)->db, rc, "search get");
    PREP(st, CONN(t), ST_S_PUT);
    s_bind(st, r, key);
    return step_done(CONN(t), st, "search put");
}

static int sq_search_get(struct ahl_store_tx *t, const char *id, struct ahl_search_row *out)
{
    PREP(st, CONN(t), ST_S_GET);
    bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, s_row, out, "search get");
}

static int sq_search_delete(struct ahl_store_tx *t, const char *id)
{
    PREP(st, CONN(t), ST_S_DELETE);
    bind_text(st, 1, id);
    return step_done(CONN(t), st, "search delete");
}

/* ---- search queries ----------------------------------------------------------------------- */

/* The column and index of each attribute. Every index leads with datastore_id. */
static const struct {
    const char *col, *index;
} search_attr[AHL_SEARCH_ATTR_COUNT] = {
    [AHL_SEARCH_PATIENT_ID] = {"patient_id", "search_patient"},
    [AHL_SEARCH_ACCESSION_NUMBER] = {"accession_number", "search_accession"},
    [AHL_SEARCH_STUDY_ID] = {"study_id", "search_study_id"},
    [AHL_SEARCH_STUDY_UID] = {"study_instance_uid", "search_study"},
    [AHL_SEARCH_SERIES_UID] = {"series_instance_uid", "search_series"},
    [AHL_SEARCH_IS_PRIMARY] = {"is_primary", "search_primary"},
    [AHL_SEARCH_CREATED_AT] = {"created_at", "search_created"},
    [AHL_SEARCH_UPDATED_AT] = {"updated_at", "search_updated"},
    [AHL_SEARCH_STUDY_DATE_TIME] = {"study_dt", "search_study_dt"},
};

static bool attr_is_ident(int a)
{
    return a >= AHL_SEARCH_PATIENT_ID && a <= AHL_SEARCH_SERIES_UID;
}

static bool attr_is_range(int a)
{
    return a == AHL_SEARCH_CREATED_AT || a == AHL_SEARCH_UPDATED_AT ||
           a == AHL_SEARCH_STUDY_DATE_TIME;
}

static int sort_attr(int sort)
{
    return sort == AHL_SEARCH_SORT_CREATED_AT        ? AHL_SEARCH_CREATED_AT
           : sort == AHL_SEARCH_SORT_STUDY_DATE_TIME ? AHL_SEARCH_STUDY_DATE_TIME
                                                     : AHL_SEARCH_UPDATED_AT;
}

static int query_check(const struct ahl_search_query *q)
{
    if (q->nfilters > AHL_SEARCH_MAX_FILTERS || q->limit < 1 || q->limit > 1000 ||
        q->sort < AHL_SEARCH_SORT_UPDATED_AT || q->sort > AHL_SEARCH_SORT_STUDY_DATE_TIME)
        return AHL_EINVAL;
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        if (f->attr < 0 || f->attr >= AHL_SEARCH_ATTR_COUNT)
            return AHL_EINVAL;
        if (f->between && !attr_is_range(f->attr))
            return AHL_EINVAL;
        bool text = attr_is_ident(f->attr) || f->attr == AHL_SEARCH_STUDY_DATE_TIME;
        if (text && (!f->text[0] || (f->between && !f->text[1])))
            return AHL_EINVAL;
    }
    return 0;
}

/* The index that drives a query: an identifier EQUAL (selective), else a filtered time range,
 * else isPrimary when the order is its index's (updatedAt), else the sort order's index. */
static int query_driver(const struct ahl_search_query *q)
{
    int sa = sort_attr(q->sort), range = -1;
    bool primary = false;
    for (unsigned i = 0; i < q->nfilters; i++) {
        int a = q->filters[i].attr;
        if (attr_is_ident(a))
            return a;
        if (attr_is_range(a) && (range < 0 || a == sa))
            range = a;
        primary |= a == AHL_SEARCH_IS_PRIMARY;
    }
    if (range >= 0)
        return range;
    if (primary && sa == AHL_SEARCH_UPDATED_AT)
        return AHL_SEARCH_IS_PRIMARY;
    return sa;
}

/* Writes the SQL of q into sql. The driving index is named with INDEXED BY and every other
 * column is written as +col, which keeps SQLite from using it for an index, so the plan is the
 * one chosen here whatever statistics say. Placeholders are numbered in the order
 * query_bind() binds them. */
static int query_sql(const struct ahl_search_query *q, char *sql, size_t cap)
{
    int drv = query_driver(q), sa = sort_attr(q->sort);
    /* Does the driving index deliver rows in the sort order (so the cursor is an index range)? */
    bool ordered = drv == sa || (sa == AHL_SEARCH_UPDATED_AT &&
                                 (attr_is_ident(drv) || drv == AHL_SEARCH_IS_PRIMARY));
    size_t n = 0;
#define ADD(...)                                          \
    do {                                                  \
        int w_ = snprintf(sql + n, cap - n, __VA_ARGS__); \
        if (w_ < 0 || (size_t)w_ >= cap - n)              \
            return AHL_ETOOBIG;                           \
        n += (size_t)w_;                                  \
    } while (0)
    if (q->scan)
        ADD("SELECT " S_COLS " FROM search NOT INDEXED WHERE datastore_id=?");
    else
        ADD("SELECT " S_COLS " FROM search INDEXED BY %s WHERE datastore_id=?",
            search_attr[drv].index);
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        const char *plus = f->attr == drv ? "" : "+";
        if (f->between)
            ADD(" AND %s%s BETWEEN ? AND ?", plus, search_attr[f->attr].col);
        else
            ADD(" AND %s%s=?", plus, search_attr[f->attr].col);
    }
    const char *dir = q->desc ? "DESC" : "ASC";
    if (q->after.set) {
        /* An EQUAL on the sort column already fixes it: the index then runs in id order and the
         * cursor must not displace that equality as the index constraint. */
        bool eq_sort = false;
        for (unsigned i = 0; i < q->nfilters; i++)
            eq_sort |=
                q->filters[i].attr == sa && q->filters[i].attr == drv && !q->filters[i].between;
        const char *plus = ordered && !eq_sort ? "" : "+";
        ADD(" AND (%s%s, %simageset_id) %s (?, ?)", plus, search_attr[sa].col, plus,
            q->desc ? "<" : ">");
    }
    ADD(" ORDER BY %s %s, imageset_id %s LIMIT ?", search_attr[sa].col, dir, dir);
#undef ADD
    return 0;
}

static void query_bind(sqlite3_stmt *st, const char *ds, const struct ahl_search_query *q)
{
    int k = 1;
    bind_text(st, k++, ds);
    for (unsigned i = 0; i < q->nfilters; i++) {
        const struct ahl_search_filter *f = &q->filters[i];
        for (int v = 0; v < (f->between ? 2 : 1); v++) {
            if (f->attr == AHL_SEARCH_IS_PRIMARY)
                sqlite3_bind_int(st, k++, f->flag);
            else if (f->attr == AHL_SEARCH_CREATED_AT || f->attr == AHL_SEARCH_UPDATED_AT)
                sqlite3_bind_int64(st, k++, f->ms[v]);
            else
                bind_text(st, k++, f->text[v]);
        }
    }
    if (q->after.set) {
        if (q->sort == AHL_SEARCH_SORT_STUDY_DATE_TIME)
            bind_text(st, k++, q->after.dt);
        else
            sqlite3_bind_int64(st, k++, q->after.ms);
        bind_text(st, k++, q->after.imageset_id);
    }
    sqlite3_bind_int64(st, k, q->limit);
}

/* The connection's prepared statement for sql (from its cache, or prepared and cached). */
static sqlite3_stmt *search_stmt(struct sq_conn *c, const char *sql)
{
    for (int i = 0; i < SEARCH_CACHE; i++)
        if (c->search[i].sql && !strcmp(c->search[i].sql, sql)) {
            sqlite3_reset(c->search[i].st);
            sqlite3_clear_bindings(c->search[i].st);
            return c->search[i].st;
        }
    struct sq_cached *slot = &c->search[c->search_next];
    c->search_next = (c->search_next + 1) % SEARCH_CACHE;
    sqlite3_finalize(slot->st);
    free(slot->sql);
    slot->st = NULL;
    if (!(slot->sql = strdup(sql)))
        return NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->st, NULL) !=
        SQLITE_OK) {
        ahl_error("sqlite: prepare search: %s: %s", sqlite3_errmsg(c->db), sql);
        sqlite3_finalize(slot->st);
        slot->st = NULL;
        free(slot->sql);
        slot->sql = NULL;
        return NULL;
    }
    return slot->st;
}

static int sq_search_query(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                           ahl_store_search_cb cb, void *ctx)
{
    char sql[2048];
    int rc;
    if ((rc = query_check(q)) < 0 || (rc = query_sql(q, sql, sizeof sql)) < 0)
        return rc;
    sqlite3_stmt *st = search_stmt(CONN(t), sql);
    if (!st)
        return AHL_EIO;
    query_bind(st, ds, q);
    struct ahl_search_row rec;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s_row(st, &rec);
        int u = cb(ctx, &rec);
        if (u) {
            sqlite3_reset(st);
            return u;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : sq_err(CONN(t)->db, rc, "search query");
}

static int sq_search_plan(struct ahl_store_tx *t, const char *ds, const struct ahl_search_query *q,
                          ahl_store_plan_cb cb, void *ctx)
{
    char sql[2100];
    sqlite3_stmt *st = NULL;
    int rc;
    memcpy(sql, "EXPLAIN QUERY PLAN ", 19);
    if ((rc = query_check(q)) < 0 || (rc = query_sql(q, sql + 19, sizeof sql - 19)) < 0)
        return rc;
    if (sqlite3_prepare_v2(CONN(t)->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_err(CONN(t)->db, SQLITE_ERROR, "search plan");
    query_bind(st, ds, q);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int u = cb(ctx, (const char *)sqlite3_column_text(st, 3));
        if (u) {
            sqlite3_finalize(st);
            return u;
        }
    }
    rc = rc == SQLITE_DONE ? 0 : sq_err(CONN(t)->db, rc, "search plan");
    sqlite3_finalize(st);
    return rc;
}

/* ---- frame index -------------------------------------------------------------------------- */

static void f_row(sqlite3_stmt *st, struct ahl_frame_rec *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->imageset_id, sizeof r->imageset_id);
    col_text(st, 1, r->frame_id, sizeof r->frame_id);
    col_text(st, 2, r->transfer_syntax, sizeof r->transfer_syntax);
}

static int sq_frame_put(struct ahl_store_tx *t, const struct ahl_frame_rec *r)
{
    PREP(st, CONN(t), ST_F_PUT);
    bind_text(st, 1, r->imageset_id);
    bind_text(st, 2, r->frame_id);
    bind_text(st, 3, r->transfer_syntax);
    return step_done(CONN(t), st, "frame put");
}

static int sq_frame_get(struct ahl_store_tx *t, const char *set, const char *frame,
                        struct ahl_frame_rec *out)
{
    PREP(st, CONN(t), ST_F_GET);
    bind_text(st, 1, set);
    bind_text(st, 2, frame);
    ONE_ROW(CONN(t), st, f_row, out, "frame get");
}

static int sq_frame_copy(struct ahl_store_tx *t, const char *from, const char *to)
{
    PREP(st, CONN(t), ST_F_COPY);
    bind_text(st, 1, from);
    bind_text(st, 2, to);
    return step_done(CONN(t), st, "frame copy");
}

static int sq_frame_delete_set(struct ahl_store_tx *t, const char *set)
{
    PREP(st, CONN(t), ST_F_DELETE_SET);
    bind_text(st, 1, set);
    return step_done(CONN(t), st, "frame delete");
}

/* ---- import jobs -------------------------------------------------------------------------- */

static void j_row(sqlite3_stmt *st, struct ahl_job_rec *r)
{
    memset(r, 0, sizeof *r);
    col_text(st, 0, r->id, sizeof r->id);
    col_text(st, 1, r->datastore_id, sizeof r->datastore_id);
    col_text(st, 2, r->name, sizeof r->name);
    col_text(st, 3, r->status, sizeof r->status);
    col_text(st, 4, r->role_arn, sizeof r->role_arn);
    col_text(st, 5, r->input_uri, sizeof r->input_uri);
    col_text(st, 6, r->output_uri, sizeof r->output_uri);
    col_text(st, 7, r->message, sizeof r->message);
    col_text(st, 8, r->client_token, sizeof r->client_token);
    r->submitted_at_ms = sqlite3_column_int64(st, 9);
    r->ended_at_ms = sqlite3_column_int64(st, 10);
}

static int sq_job_put(struct ahl_store_tx *t, const struct ahl_job_rec *r, bool create)
{
    PREP(st, CONN(t), create ? ST_J_INSERT : ST_J_UPDATE);
    bind_text(st, 1, r->id);
    bind_text(st, 2, r->datastore_id);
    bind_text(st, 3, r->name);
    bind_text(st, 4, r->status);
    bind_text(st, 5, r->role_arn);
    bind_text(st, 6, r->input_uri);
    bind_text(st, 7, r->output_uri);
    bind_text(st, 8, r->message);
    bind_text(st, 9, r->client_token);
    sqlite3_bind_int64(st, 10, r->submitted_at_ms);
    sqlite3_bind_int64(st, 11, r->ended_at_ms);
    return create ? step_done(CONN(t), st, "job insert")
                  : step_one_change(CONN(t), st, "job update");
}

static int job_get_any(struct ahl_store_tx *t, const char *id, struct ahl_job_rec *out)
{
    PREP(st, CONN(t), ST_J_GET);
    bind_text(st, 1, id);
    ONE_ROW(CONN(t), st, j_row, out, "job get");
}

static int sq_job_get(struct ahl_store_tx *t, const char *ds, const char *id,
                      struct ahl_job_rec *out)
{
    int rc = job_get_any(t, id, out);
    return rc == 0 && ds && strcmp(ds, out->datastore_id) != 0 ? AHL_ENOTFOUND : rc;
}

static int sq_job_list(struct ahl_store_tx *t, const char *ds, const char *status,
                       const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx)
{
    PREP(st, CONN(t), ST_J_LIST);
    struct ahl_job_rec rec;
    bind_text(st, 1, ds);
    bind_opt_text(st, 2, status);
    bind_opt_text(st, 3, after_id);
    sqlite3_bind_int64(st, 4, limit);
    FOR_ROWS(CONN(t), st, rec, j_row, cb, ctx, "job list");
}

static int sq_frame_backfill_next(struct ahl_store_tx *t, char id[AHL_ID_LEN + 1])
{
    PREP(st, CONN(t), ST_F_BACKFILL_NEXT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        col_text(st, 0, id, AHL_ID_LEN + 1);
        sqlite3_reset(st);
        return 0;
    }
    return rc == SQLITE_DONE ? AHL_ENOTFOUND : sq_err(CONN(t)->db, rc, "frame backfill");
}

static int sq_frame_backfill_done(struct ahl_store_tx *t, const char *id)
{
    PREP(st, CONN(t), ST_F_BACKFILL_DONE);
    bind_text(st, 1, id);
    return step_done(CONN(t), st, "frame backfill done");
}

static const struct ahl_store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .datastore_put = sq_datastore_put,
    .datastore_get = sq_datastore_get,
    .datastore_list = sq_datastore_list,
    .datastore_delete = sq_datastore_delete,
    .datastore_count_imagesets = sq_datastore_count_imagesets,
    .tag_put = sq_tag_put,
    .tag_delete = sq_tag_delete,
    .tag_list = sq_tag_list,
    .tag_delete_all = sq_tag_delete_all,
    .imageset_put = sq_imageset_put,
    .imageset_advance = sq_imageset_advance,
    .imageset_get = sq_imageset_get,
    .imageset_list = sq_imageset_list,
    .imageset_by_study = sq_imageset_by_study,
    .version_put = sq_version_put,
    .version_update = sq_version_update,
    .version_get = sq_version_get,
    .version_list = sq_version_list,
    .version_scan = sq_version_scan,
    .chunk_put = sq_chunk_put,
    .chunk_get = sq_chunk_get,
    .chunk_scan = sq_chunk_scan,
    .chunk_stats = sq_chunk_stats,
    .search_put = sq_search_put,
    .search_get = sq_search_get,
    .search_delete = sq_search_delete,
    .search_query = sq_search_query,
    .search_plan = sq_search_plan,
    .frame_put = sq_frame_put,
    .frame_get = sq_frame_get,
    .frame_copy = sq_frame_copy,
    .frame_delete_set = sq_frame_delete_set,
    .frame_backfill_next = sq_frame_backfill_next,
    .frame_backfill_done = sq_frame_backfill_done,
    .job_put = sq_job_put,
    .job_get = sq_job_get,
    .job_list = sq_job_list,
};

/* Opens the writer and checkpoint connections, migrating the schema, and starts the checkpointer.
 * SQLite would create the database with mode 0644 less the umask, and gives its -wal and -shm
 * files the database's mode: the file is created 0600 first, so that no other user can read the
 * data whatever the umask. */
static int open_writable(struct sq_store *q)
{
    int rc, fd = open(q->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        ahl_error("cannot create %s: %s", q->path, strerror(e));
        return e == ENOSPC ? AHL_ENOSPC : AHL_EIO;
    }
    close(fd);
    q->open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if ((rc = conn_open(q, &q->writer)) < 0 || (rc = migrate(q->writer->db)) < 0 ||
        (rc = conn_open(q, &q->ckpt_conn)) < 0)
        return rc;
    sqlite3_busy_timeout(q->ckpt_conn->db, CKPT_WAIT_MS);
    if (pthread_create(&q->ckpt_thread, NULL, checkpointer, q) == 0) {
        q->ckpt_running = true;
        sqlite3_wal_autocheckpoint(q->writer->db, 0);
        sqlite3_wal_hook(q->writer->db, wal_hook, q);
    }
    return 0;
}

/* On a full disk the database cannot be opened for writing, nor even read in WAL mode, which must
 * create and size the -shm file first. It can still be read as an immutable file (no locks, no
 * -shm), which is exact when the WAL holds nothing: the last process to close the database copied
 * everything back. So the store is opened read-only then: every connection reads the file
 * through its immutable URI, and every write fails with AHL_ENOSPC until the program is
 * restarted with free space (see sq_begin). While it runs so, nothing else may write to the
 * database (a writer would need the same free space). With writes still in the WAL (a crash),
 * AHL_ENOSPC. */
static int open_read_only(struct sq_store *q)
{
    struct stat st;
    struct ahl_buf uri;
    int rc = 0;
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", q->path);
    if (stat(wal, &st) == 0 && st.st_size > 0) {
        ahl_error("the disk holding %s is full, and its WAL holds writes not yet copied into it: "
                  "free space on the disk, then start again",
                  q->path);
        return AHL_ENOSPC;
    }
    /* A URI path may not hold '?' or '#', and '%' starts an escape: those are escaped. */
    ahl_buf_init(&uri, strlen(q->path) * 3 + 32);
    rc = ahl_buf_adds(&uri, "file:");
    for (const char *p = q->path; *p && rc == 0; p++)
        rc = *p == '?' || *p == '#' || *p == '%' ? ahl_buf_addf(&uri, "%%%02X", (unsigned char)*p)
                                                 : ahl_buf_add(&uri, p, 1);
    if (rc == 0)
        rc = ahl_buf_adds(&uri, "?immutable=1");
    char *path = rc == 0 ? strdup(uri.data) : NULL;
    ahl_buf_release(&uri);
    if (!path)
        return AHL_ENOMEM;
    free(q->path);
    q->path = path;
    q->open_flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
    q->read_only = true;
    /* A schema that needs migrating cannot be migrated without space. */
    struct sq_conn *c = NULL;
    sqlite3_stmt *st_version = NULL;
    if ((rc = conn_open(q, &c)) < 0)
        return rc;
    int have = -1, want = (int)(sizeof migrations / sizeof migrations[0]);
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st_version, NULL) == SQLITE_OK &&
        sqlite3_step(st_version) == SQLITE_ROW)
        have = sqlite3_column_int(st_version, 0);
    sqlite3_finalize(st_version);
    if (have != want) {
        ahl_error("the disk holding the database is full, and its schema (version %d) must be "
                  "upgraded to version %d: free space on the disk, then start again",
                  have, want);
        conn_close(c);
        return AHL_ENOSPC;
    }
    q->idle = c; /* the first reader */
    q->readers = 1;
    ahl_warn("the disk holding the database is full: serving it read-only; every write fails "
             "until space is freed on the disk and the program is started again");
    return 0;
}

int ahl_store_open_sqlite(const char *data_dir, unsigned max_readers, struct ahl_store **out)
{
    struct sq_store *q = NULL;
    int rc;
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
        ahl_error("cannot create data directory %s: %s", data_dir, strerror(errno));
        return AHL_EIO;
    }
    if (!(q = calloc(1, sizeof *q)))
        return AHL_ENOMEM;
    q->base.ops = &sq_ops;
    q->max_readers = max_readers ? max_readers : 8;
    pthread_mutex_init(&q->write_lock, NULL);
    pthread_mutex_init(&q->batch_lock, NULL);
    q->batch_max = BATCH_MAX;
    const char *bm = getenv("AHL_SQLITE_BATCH_MAX");
    if (bm) {
        char *end;
        long v = strtol(bm, &end, 10);
        if (end != bm && !*end && v >= 1 && v <= BATCH_MAX)
            q->batch_max = (unsigned)v;
    }
    pthread_cond_init(&q->batch_cond, NULL);
    pthread_mutex_init(&q->pool_lock, NULL);
    pthread_cond_init(&q->pool_cond, NULL);
    pthread_mutex_init(&q->ckpt_lock, NULL);
    pthread_cond_init(&q->ckpt_cond, NULL);
    size_t n = strlen(data_dir) + sizeof AHL_STORE_SQLITE_FILE + 2;
    if (!(q->path = malloc(n))) {
        rc = AHL_ENOMEM;
        goto out;
    }
    snprintf(q->path, n, "%s/%s", data_dir, AHL_STORE_SQLITE_FILE);
    rc = open_writable(q);
    if (rc == AHL_ENOSPC) {
        conn_close(q->writer);
        conn_close(q->ckpt_conn);
        q->writer = q->ckpt_conn = NULL;
        rc = open_read_only(q);
    }
    if (rc < 0)
        goto out;
    *out = &q->base;
    return 0;
out:
    sq_close(&q->base);
    return rc;
}

int ahl_store_sqlite_stats(struct ahl_store *s, struct ahl_store_sqlite_stats *out)
{
    if (!s || s->ops != &sq_ops)
        return AHL_EINVAL;
    struct sq_store *q = (struct sq_store *)s;
    pthread_mutex_lock(&q->batch_lock);
    out->commits = q->stat_commits;
    out->write_txs = q->stat_txs;
    out->write_waiting = q->write_waiting;
    pthread_mutex_unlock(&q->batch_lock);
    return 0;
}

int ahl_store_sqlite_integrity_check(struct ahl_store *s, bool quick, ahl_store_plan_cb cb,
                                     void *ctx, unsigned *problems)
{
    struct ahl_store_tx *tx = NULL;
    sqlite3_stmt *st = NULL;
    unsigned found = 0;
    int rc, step;
    if (problems)
        *problems = 0;
    if (!s || s->ops != &sq_ops)
        return AHL_EINVAL;
    if ((rc = sq_begin(s, false, &tx)) < 0)
        return rc;
    sqlite3 *db = CONN(tx)->db;
    if (sqlite3_prepare_v2(db, quick ? "PRAGMA quick_check(100)" : "PRAGMA integrity_check(100)",
                           -1, &st, NULL) != SQLITE_OK) {
        /* A schema that cannot be read is itself damage SQLite reports here. */
        rc = sqlite3_errcode(db) == SQLITE_CORRUPT || sqlite3_errcode(db) == SQLITE_NOTADB
                 ? AHL_ECORRUPT
                 : AHL_EIO;
        found++;
        if (cb)
            cb(ctx, sqlite3_errmsg(db));
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (line && !strcmp(line, "ok"))
            continue;
        found++;
        if (cb)
            cb(ctx, line ? line : "(no text)");
    }
    if (step != SQLITE_DONE) {
        /* The check itself stopped on a page it could not read: that is damage too. */
        found++;
        if (cb)
            cb(ctx, sqlite3_errmsg(db));
        if (sqlite3_errcode(db) != SQLITE_CORRUPT && sqlite3_errcode(db) != SQLITE_NOTADB)
            rc = AHL_EIO;
    }
    if (rc == 0 && found)
        rc = AHL_ECORRUPT;
out:
    sqlite3_finalize(st);
    sq_rollback(tx);
    if (problems)
        *problems = found;
    return rc;
}
