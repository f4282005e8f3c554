/* The SQLite backend of the storage interface, one database file in the data directory: its
 * connections and transactions, checkpoints, opening and closing, and the ops table. The other
 * files of the backend are listed in sqlite_internal.h.
 *
 * Connections: one writer connection, guarded by a mutex so write transactions run one at a time
 * (each starts with BEGIN IMMEDIATE, so a second process such as `ahilite check` waits on
 * busy_timeout instead of deadlocking), and a pool of reader connections created on demand up to
 * max_readers; a read transaction takes an idle reader (or waits for one) and gets a consistent
 * WAL snapshot. Every connection caches its prepared statements, indexed by enum ahl__sq_stmt.
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
 * A committing one that finds no thread waiting to begin a write transaction but writers
 * announced (ahl_store_write_intent: threads computing their update before they begin) first
 * waits, at most AHL_STORE_COMMIT_DELAY_US, for one of them to begin or for all to withdraw: on
 * two cores, threads preparing updates otherwise rarely reach the write lock while a commit is in
 * progress, and every update paid for a commit of its own (the pages of some thirty B-trees).
 * Then, if another thread is waiting to begin a write transaction (and fewer than batch_max
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
 */
#include "store/sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/banned.h"

static const char *const ctl_sql[CTL_COUNT] = {
    [CTL_BEGIN] = "BEGIN",
    [CTL_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [CTL_COMMIT] = "COMMIT",
    [CTL_ROLLBACK] = "ROLLBACK",
    [CTL_SAVEPOINT] = "SAVEPOINT ahl_tx",
    [CTL_RELEASE] = "RELEASE ahl_tx",
    [CTL_ROLLBACK_TO] = "ROLLBACK TO ahl_tx",
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

/* A committed write transaction waiting for its batch's COMMIT (lives on its thread's stack). */
struct sq_waiter {
    struct sq_waiter *next;
    int rc;
    bool done;
};

struct ahl__sq_store {
    struct ahl_store base;
    /* checkpointer */
    pthread_t ckpt_thread;
    bool ckpt_running, ckpt_wanted, ckpt_stop;
    bool truncate_wanted; /* the WAL is past WAL_MAX_FRAMES */
    bool ckpt_pending;    /* a TRUNCATE waits for the write lock: batches are not handed on */
    int ckpt_log;         /* WAL frames when the last checkpoint ran (0 after the WAL restarted) */
    int wal_frames;       /* WAL frames after the last commit */
    uint64_t stat_frames; /* WAL frames appended by every commit so far */
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    struct ahl__sq_conn *ckpt_conn;
    char *path;     /* the database file, or its read-only URI (see open_read_only) */
    int open_flags; /* SQLITE_OPEN_* of every connection */
    bool read_only; /* opened read-only (on a full disk, or on purpose): every write fails with
                       AHL_ENOSPC */
    pthread_mutex_t write_lock; /* held for the whole of a write transaction */
    struct ahl__sq_conn *writer;
    /* group commit; batch_lock guards these (taken after write_lock, never before) */
    pthread_mutex_t batch_lock;
    pthread_cond_t batch_cond;  /* members' done flags */
    unsigned write_waiting;     /* threads in sq_begin(write) not yet holding write_lock */
    unsigned write_intent;      /* writers announced by ahl_store_write_intent, not yet begun */
    unsigned delay_us;          /* the longest wait for an announced writer (set_commit_delay_us) */
    bool delaying;              /* a committer waits for an announced writer */
    pthread_cond_t arrive_cond; /* write_waiting rose or write_intent fell (CLOCK_MONOTONIC) */
    bool batch_open;            /* the writer connection is inside BEGIN IMMEDIATE */
    unsigned batch_txs;         /* write transactions ended in the open batch */
    /* Group commit bound: a batch is committed once batch_max write transactions have ended in
     * it, even with writers waiting, so a member waits for at most batch_max - 1 others.
     * AHL_STORE_SQLITE_COMMIT_BATCH_MAX unless ahl_store_sqlite_set_commit_batch_max lowered it. */
    unsigned batch_max;
    struct sq_waiter *members; /* committed members waiting for the batch's COMMIT */
    uint64_t stat_commits, stat_txs;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct ahl__sq_conn *idle;
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

int ahl__sq_err(sqlite3 *db, int rc, const char *what)
{
    int code = sq_code(db, rc);
    if (code == AHL_EIO || code == AHL_ENOSPC)
        ahl_error("sqlite: %s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return code;
}

static void conn_close(struct ahl__sq_conn *c)
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

int ahl__sq_exec(sqlite3 *db, const char *sql)
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
static int ctl(struct ahl__sq_conn *c, enum ahl__sq_ctl id)
{
    int rc;
    if (!c->ctl[id] && (rc = sqlite3_prepare_v3(c->db, ctl_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                                &c->ctl[id], NULL)) != SQLITE_OK)
        return ahl__sq_err(c->db, rc, ctl_sql[id]);
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
static int conn_open(const struct ahl__sq_store *q, struct ahl__sq_conn **out)
{
    struct ahl__sq_conn *c = calloc(1, sizeof *c);
    if (!c)
        return AHL_ENOMEM;
    int rc = sqlite3_open_v2(q->path, &c->db, q->open_flags | SQLITE_OPEN_NOMUTEX, ahl__sq_vfs());
    if (rc != SQLITE_OK) {
        rc = ahl__sq_err(c->db, rc, q->path);
        conn_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->db, 10000);
    rc = ahl__sq_exec(c->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                             " PRAGMA secure_delete=ON; PRAGMA journal_size_limit=67108864;"
                             " PRAGMA cache_size=-65536;");
    if (rc < 0) {
        conn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Decides, under ckpt_lock, which checkpoint the WAL needs now and wakes the checkpointer for it.
 * Frames are counted since the last checkpoint, not in the WAL: while readers keep the WAL from
 * restarting it stays over CKPT_FRAMES, and waking the checkpointer on every commit then ran
 * back-to-back checkpoints (each with an fdatasync) for a few frames each, a third of a core
 * under an update load. */
static void ckpt_decide(struct ahl__sq_store *q)
{
    int since = q->wal_frames - q->ckpt_log;
    q->ckpt_wanted = since >= CKPT_FRAMES;
    q->truncate_wanted = q->wal_frames >= WAL_MAX_FRAMES && since >= CKPT_RETRY_FRAMES;
    if (q->ckpt_wanted || q->truncate_wanted)
        pthread_cond_signal(&q->ckpt_cond);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct ahl__sq_store *q = arg;
    (void)db;
    (void)name;
    pthread_mutex_lock(&q->ckpt_lock);
    if (frames < q->ckpt_log)
        q->ckpt_log = 0; /* the WAL restarted from its beginning */
    q->stat_frames += (uint64_t)(frames >= q->wal_frames ? frames - q->wal_frames : frames);
    q->wal_frames = frames;
    ckpt_decide(q);
    pthread_mutex_unlock(&q->ckpt_lock);
    return SQLITE_OK;
}

/* Runs a TRUNCATE checkpoint holding the write lock, so that no write transaction of this process
 * is open meanwhile and the checkpoint waits only for readers (the batch open when it asks is
 * committed, not handed on: see write_end). The checkpoint connection's busy timeout
 * (CKPT_WAIT_MS) bounds the wait. Returns SQLite's result; *nlog receives the WAL frames left. */
/* Takes the write lock with no batch open, so that no write transaction of this process is open
 * until writer_idle_unlock: a batch handed to a waiting writer is committed first (see
 * write_end, which commits rather than hands on while ckpt_pending is set). */
static void writer_idle_lock(struct ahl__sq_store *q)
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
}

static int ckpt_truncate(struct ahl__sq_store *q, int *nlog)
{
    writer_idle_lock(q);
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

/* ahl_store_compact: the free pages are cut off the end of the file (incremental_vacuum needs
 * auto_vacuum=INCREMENTAL, which new databases have and VACUUM gives an old one), and the WAL,
 * which still holds copies of the pages that were freed, is checkpointed and truncated. */
static int sq_compact(struct ahl_store *s, bool full)
{
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
    if (!q->writer || !q->ckpt_conn)
        return AHL_ENOSPC;
    writer_idle_lock(q);
    int nlog = 0, ckpt = 0;
    int rc = ahl__sq_exec(q->writer->db, full ? "PRAGMA auto_vacuum=INCREMENTAL; VACUUM"
                                              : "PRAGMA incremental_vacuum");
    if (rc == 0) {
        int r = sqlite3_wal_checkpoint_v2(q->ckpt_conn->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                          &nlog, &ckpt);
        if (r == SQLITE_BUSY)
            ahl_warn("sqlite: readers kept the WAL from being truncated; it shrinks at the next "
                     "checkpoint");
        else if (r != SQLITE_OK)
            rc = ahl__sq_err(q->ckpt_conn->db, r, "checkpoint");
    }
    pthread_mutex_unlock(&q->write_lock);
    return rc;
}

static void *checkpointer(void *arg)
{
    struct ahl__sq_store *q = arg;
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
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
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
        struct ahl__sq_conn *c = q->idle;
        q->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&q->write_lock);
    pthread_mutex_destroy(&q->batch_lock);
    pthread_cond_destroy(&q->batch_cond);
    pthread_cond_destroy(&q->arrive_cond);
    pthread_mutex_destroy(&q->pool_lock);
    pthread_cond_destroy(&q->pool_cond);
    free(q->path);
    free(q);
}

/* Ends a write transaction (see "Group commit" at the top): releases or rolls back its
 * savepoint (has_sp: the savepoint was opened), then hands the open SQLite transaction to a
 * waiting writer or COMMITs the batch. Returns the transaction's result: for a commit, 0 once
 * the batch's COMMIT succeeded; otherwise rc as given. Frees tx. */
static int write_end(struct ahl__sq_tx *tx, bool commit, int rc)
{
    struct ahl__sq_store *q = tx->owner;
    struct ahl__sq_conn *c = tx->conn;
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
    if (commit && !ended && !q->write_waiting && q->write_intent && q->delay_us &&
        q->batch_txs < q->batch_max && !q->ckpt_pending) {
        struct timespec until = ahl_deadline(CLOCK_MONOTONIC, q->delay_us);
        /* This thread holds write_lock, so no TRUNCATE checkpoint can start meanwhile. */
        q->delaying = true;
        while (!q->write_waiting && q->write_intent)
            if (pthread_cond_timedwait(&q->arrive_cond, &q->batch_lock, &until) == ETIMEDOUT)
                break;
        q->delaying = false;
    }
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
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
    struct ahl__sq_tx *tx = calloc(1, sizeof *tx);
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
        pthread_cond_signal(&q->arrive_cond);
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

static void sq_write_intent(struct ahl_store *s, int delta)
{
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
    pthread_mutex_lock(&q->batch_lock);
    q->write_intent = (unsigned)((int)q->write_intent + delta);
    if (!q->write_intent)
        pthread_cond_signal(&q->arrive_cond);
    pthread_mutex_unlock(&q->batch_lock);
}

/* Ends tx after COMMIT or ROLLBACK: gives the connection back. */
static void tx_end(struct ahl__sq_tx *tx)
{
    struct ahl__sq_store *q = tx->owner;
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
    struct ahl__sq_tx *tx = (struct ahl__sq_tx *)t;
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
    struct ahl__sq_tx *tx = (struct ahl__sq_tx *)t;
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

static const struct ahl_store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .write_intent = sq_write_intent,
    .datastore_put = ahl__sq_datastore_put,
    .datastore_get = ahl__sq_datastore_get,
    .datastore_list = ahl__sq_datastore_list,
    .datastore_delete = ahl__sq_datastore_delete,
    .datastore_count_imagesets = ahl__sq_datastore_count_imagesets,
    .tombstones_expire = ahl__sq_tombstones_expire,
    .tag_put = ahl__sq_tag_put,
    .tag_delete = ahl__sq_tag_delete,
    .tag_list = ahl__sq_tag_list,
    .tag_delete_all = ahl__sq_tag_delete_all,
    .tag_scan = ahl__sq_tag_scan,
    .imageset_put = ahl__sq_imageset_put,
    .imageset_advance = ahl__sq_imageset_advance,
    .imageset_get = ahl__sq_imageset_get,
    .imageset_list = ahl__sq_imageset_list,
    .imageset_by_study = ahl__sq_imageset_by_study,
    .imageset_touch = ahl__sq_imageset_touch,
    .version_put = ahl__sq_version_put,
    .version_update = ahl__sq_version_update,
    .version_get = ahl__sq_version_get,
    .version_list = ahl__sq_version_list,
    .version_scan = ahl__sq_version_scan,
    .chunk_put = ahl__sq_chunk_put,
    .chunk_get = ahl__sq_chunk_get,
    .chunk_scan = ahl__sq_chunk_scan,
    .chunk_stats = ahl__sq_chunk_stats,
    .chunk_list = ahl__sq_chunk_list,
    .chunk_delete = ahl__sq_chunk_delete,
    .gc_roots = ahl__sq_gc_roots,
    .gc_versions = ahl__sq_gc_versions,
    .frame_fence_get = ahl__sq_frame_fence_get,
    .frame_fence_bump = ahl__sq_frame_fence_bump,
    .compact = sq_compact,
    .search_put = ahl__sq_search_put,
    .search_get = ahl__sq_search_get,
    .search_delete = ahl__sq_search_delete,
    .search_query = ahl__sq_search_query,
    .search_plan = ahl__sq_search_plan,
    .frame_put = ahl__sq_frame_put,
    .frame_get = ahl__sq_frame_get,
    .frame_copy = ahl__sq_frame_copy,
    .frame_delete_set = ahl__sq_frame_delete_set,
    .frame_list = ahl__sq_frame_list,
    .frame_backfill_next = ahl__sq_frame_backfill_next,
    .frame_backfill_done = ahl__sq_frame_backfill_done,
    .qido_set_get = ahl__sq_qido_set_get,
    .qido_set_put = ahl__sq_qido_set_put,
    .qido_set_delete = ahl__sq_qido_set_delete,
    .qido_series_put = ahl__sq_qido_series_put,
    .qido_series_delete = ahl__sq_qido_series_delete,
    .qido_series_touch = ahl__sq_qido_series_touch,
    .qido_instance_put = ahl__sq_qido_instance_put,
    .qido_instance_delete = ahl__sq_qido_instance_delete,
    .qido_study_refresh = ahl__sq_qido_study_refresh,
    .qido_query = ahl__sq_qido_query,
    .qido_plan = ahl__sq_qido_plan,
    .qido_backfill_next = ahl__sq_qido_backfill_next,
    .qido_backfill_done = ahl__sq_qido_backfill_done,
    .event_put = ahl__sq_event_put,
    .event_list = ahl__sq_event_list,
    .event_delete = ahl__sq_event_delete,
    .event_trim = ahl__sq_event_trim,
    .event_lease = ahl__sq_event_lease,
    .job_put = ahl__sq_job_put,
    .job_get = ahl__sq_job_get,
    .job_list = ahl__sq_job_list,
    .job_claim = ahl__sq_job_claim,
    .job_renew = ahl__sq_job_renew,
    .job_release = ahl__sq_job_release,
    .job_options_put = ahl__sq_job_options_put,
    .job_options_get = ahl__sq_job_options_get,
};

/* Opens the writer and checkpoint connections, migrating the schema, and starts the checkpointer.
 * SQLite would create the database with mode 0644 less the umask, and gives its -wal and -shm
 * files the database's mode: the file is created 0600 first, so that no other user can read the
 * data whatever the umask. */
static int open_writable(struct ahl__sq_store *q)
{
    int rc, fd = open(q->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        ahl_error("cannot create %s: %s", q->path, strerror(e));
        return e == ENOSPC ? AHL_ENOSPC : AHL_EIO;
    }
    close(fd);
    q->open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if ((rc = conn_open(q, &q->writer)) < 0 || (rc = ahl__sq_migrate(q->writer->db)) < 0 ||
        (rc = conn_open(q, &q->ckpt_conn)) < 0)
        return rc;
    /* A batch's later members are savepoints, whose statement journals (the pages they change,
     * some thirty each) spilled to a temporary file past 64 KiB: two writes a page. In memory they
     * take at most batch_max members' pages. */
    if ((rc = ahl__sq_exec(q->writer->db, "PRAGMA temp_store=MEMORY")) < 0)
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
static int open_read_only(struct ahl__sq_store *q, bool deliberate)
{
    struct stat st;
    struct ahl_buf uri;
    int rc = 0;
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", q->path);
    if (stat(wal, &st) == 0 && st.st_size > 0) {
        if (deliberate) {
            ahl_error("%s-wal holds writes not yet copied into the database (a server stopped "
                      "without closing it): start and stop `ahilite serve` on it once, or run "
                      "`ahilite check` on it, then try again",
                      q->path);
            return AHL_ECONFLICT;
        }
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
    struct ahl__sq_conn *c = NULL;
    sqlite3_stmt *st_version = NULL;
    if ((rc = conn_open(q, &c)) < 0)
        return rc;
    int have = -1, want = ahl__sq_schema_version();
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st_version, NULL) == SQLITE_OK &&
        sqlite3_step(st_version) == SQLITE_ROW)
        have = sqlite3_column_int(st_version, 0);
    sqlite3_finalize(st_version);
    if (have != want) {
        if (deliberate)
            ahl_error("the database's schema (version %d) must be upgraded to version %d before "
                      "it can be read without writing: run `ahilite check` on it (or start and "
                      "stop `ahilite "
                      "serve` on it) once",
                      have, want);
        else
            ahl_error("the disk holding the database is full, and its schema (version %d) must "
                      "be upgraded to version %d: free space on the disk, then start again",
                      have, want);
        conn_close(c);
        return deliberate ? AHL_EUNSUPPORTED : AHL_ENOSPC;
    }
    q->idle = c; /* the first reader */
    q->readers = 1;
    if (!deliberate)
        ahl_warn("the disk holding the database is full: serving it read-only; every write fails "
                 "until space is freed on the disk and the program is started again");
    return 0;
}

/* A new store handle for the database file in data_dir, not yet opened. */
static int store_new(const char *data_dir, unsigned max_readers, struct ahl__sq_store **out)
{
    struct ahl__sq_store *q = NULL;
    if (!(q = calloc(1, sizeof *q)))
        return AHL_ENOMEM;
    q->base.ops = &sq_ops;
    q->max_readers = max_readers ? max_readers : 8;
    pthread_mutex_init(&q->write_lock, NULL);
    pthread_mutex_init(&q->batch_lock, NULL);
    q->batch_max = AHL_STORE_SQLITE_COMMIT_BATCH_MAX;
    q->delay_us = AHL_STORE_COMMIT_DELAY_US;
    pthread_cond_init(&q->batch_cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->arrive_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&q->pool_lock, NULL);
    pthread_cond_init(&q->pool_cond, NULL);
    pthread_mutex_init(&q->ckpt_lock, NULL);
    pthread_cond_init(&q->ckpt_cond, NULL);
    size_t n = strlen(data_dir) + sizeof AHL_STORE_SQLITE_FILE + 2;
    if (!(q->path = malloc(n))) {
        sq_close(&q->base);
        return AHL_ENOMEM;
    }
    snprintf(q->path, n, "%s/%s", data_dir, AHL_STORE_SQLITE_FILE);
    *out = q;
    return 0;
}

int ahl_store_open_sqlite(const char *data_dir, unsigned max_readers, struct ahl_store **out)
{
    struct ahl__sq_store *q = NULL;
    int rc;
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
        ahl_error("cannot create data directory %s: %s", data_dir, strerror(errno));
        return AHL_EIO;
    }
    if ((rc = store_new(data_dir, max_readers, &q)) < 0)
        return rc;
    rc = open_writable(q);
    if (rc == AHL_ENOSPC) {
        conn_close(q->writer);
        conn_close(q->ckpt_conn);
        q->writer = q->ckpt_conn = NULL;
        rc = open_read_only(q, false);
    }
    if (rc < 0)
        goto out;
    *out = &q->base;
    return 0;
out:
    sq_close(&q->base);
    return rc;
}

/* Whether another process has the database open: every SQLite connection in WAL mode holds a
 * shared lock in the -shm file for as long as it is open (its "dead man switch"), so a lock
 * there that fcntl reports (it reports only other processes' locks) means a connection of
 * another process, such as a running server. */
static int check_not_open(const char *db_path)
{
    char shm[4096];
    snprintf(shm, sizeof shm, "%s-shm", db_path);
    int fd = open(shm, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* no -shm file: nobody has the database open in WAL mode */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    int rc = fcntl(fd, F_GETLK, &fl);
    close(fd);
    if (rc < 0) {
        ahl_error("cannot test the locks of %s: %s", shm, strerror(errno));
        return AHL_EIO;
    }
    if (fl.l_type != F_UNLCK) {
        ahl_error("%s is open in another process (pid %ld, e.g. a running `ahilite serve`): "
                  "stop it first",
                  db_path, (long)fl.l_pid);
        return AHL_ECONFLICT;
    }
    return 0;
}

int ahl_store_open_sqlite_read_only(const char *data_dir, unsigned max_readers,
                                    struct ahl_store **out)
{
    struct ahl__sq_store *q = NULL;
    struct stat st;
    int rc;
    if ((rc = store_new(data_dir, max_readers, &q)) < 0)
        return rc;
    if (stat(q->path, &st) < 0) {
        ahl_error("no database at %s", q->path);
        rc = AHL_ENOTFOUND;
        goto out;
    }
    if ((rc = check_not_open(q->path)) < 0 || (rc = open_read_only(q, true)) < 0)
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
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
    pthread_mutex_lock(&q->batch_lock);
    out->commits = q->stat_commits;
    out->write_txs = q->stat_txs;
    out->write_waiting = q->write_waiting;
    out->delaying = q->delaying;
    pthread_mutex_unlock(&q->batch_lock);
    pthread_mutex_lock(&q->ckpt_lock);
    out->wal_frames = q->stat_frames;
    pthread_mutex_unlock(&q->ckpt_lock);
    return 0;
}

int ahl_store_sqlite_set_commit_batch_max(struct ahl_store *s, unsigned max)
{
    if (!s || s->ops != &sq_ops || max < 1 || max > AHL_STORE_SQLITE_COMMIT_BATCH_MAX)
        return AHL_EINVAL;
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
    pthread_mutex_lock(&q->batch_lock);
    q->batch_max = max;
    pthread_mutex_unlock(&q->batch_lock);
    return 0;
}

int ahl_store_sqlite_set_commit_delay_us(struct ahl_store *s, unsigned us)
{
    if (!s || s->ops != &sq_ops || us > 60000000)
        return AHL_EINVAL;
    struct ahl__sq_store *q = (struct ahl__sq_store *)s;
    pthread_mutex_lock(&q->batch_lock);
    q->delay_us = us;
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
