/* The PostgreSQL backend of the storage interface: its pool of connections, transactions, running
 * named statements, error mapping, the ops table, opening and closing. The other files of the
 * backend are listed in pg_internal.h.
 *
 * Connections: a pool of at most max_conns libpq connections, opened on demand; a transaction
 * takes an idle one (or waits for one) and gives it back when it ends. A connection that broke
 * (the server restarted, the network failed) is closed when its transaction ends and a new one
 * is opened for a later transaction. Every connection remembers which named statements it has
 * prepared (ahl__pg_run) and keeps the last RT_CACHE statements built at run time prepared
 * (ahl__pg_run_sql with cache).
 *
 * Transactions: a read transaction is BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, one
 * snapshot for all its statements. A write transaction is BEGIN followed by a transaction-level
 * advisory lock on one key of the schema: write transactions of every node
 * using the schema run one at a time, which is what store.h promises ("a write transaction is
 * exclusive") and what the engine's compare-and-set of latest versions, primary-set grouping and
 * study rows rely on. Within one node a mutex is taken first, so that at most one connection of
 * the pool waits for the advisory lock while the others stay free for readers (a thread inside a
 * write transaction may begin a read transaction: with every connection waiting for the lock it
 * held, it would wait forever). The lock's key is (AHL_PG_LOCK_CLASS, OID of the schema tables
 * live in), so that stores in different schemas of one database (the tests' stores) do not
 * exclude one another. BEGIN (and the lock, or a later member's SAVEPOINT) is sent ahead in
 * pipeline mode with the transaction's first statement, which fails if they did; a read
 * transaction's ROLLBACK, or COMMIT once all its statements succeeded, is sent with a sync and
 * not waited for: the connection goes back to the pool with it, and pool_take reads its answer
 * (a connection left inside a transaction is replaced).
 *
 * Group commit: as on SQLite (sqlite_conn.c), write transactions of this node's threads that
 * queue behind one another share one PostgreSQL transaction, and so one COMMIT: with writers
 * serialised, every COMMIT's WAL flush would otherwise bound the node's writes to one per flush.
 * The first write transaction of a batch begins it (BEGIN and the advisory lock); each later one
 * is a SAVEPOINT in it. When one ends, its own part ends first: commit RELEASEs its savepoint,
 * rollback goes back to it (the first one, rolling back, rolls the whole transaction back: it
 * holds nothing else). Then, if another thread waits to begin a write transaction (and fewer than
 * PG_BATCH_MAX have ended in the batch), the transaction is handed on with the write mutex, and
 * a committed member sleeps until the batch's COMMIT; otherwise this thread COMMITs and wakes
 * every member with the result. So write transactions still run one at a time, each seeing the
 * earlier ones' writes; ahl_store_commit() returns 0 only after the COMMIT that made its writes
 * durable, and a failed COMMIT fails every member; a lone writer commits at once. Other
 * connections and nodes see a batch's writes after its COMMIT; the advisory lock is held from
 * the batch's first BEGIN to its COMMIT. Write intents (store.h) work as on SQLite: a committing
 * transaction with nobody waiting but writers announced waits at most AHL_STORE_COMMIT_DELAY_US
 * for one of them.
 *
 * Durability: COMMIT returns once the server made the transaction durable (synchronous_commit
 * as the server is configured, on by default). A COMMIT of a transaction the server had aborted
 * answers ROLLBACK, which is reported as AHL_EIO.
 */
#include "store/pg_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/banned.h"

/* Statements built at run time kept prepared per connection (search and QIDO query shapes). */
#define RT_CACHE 64
/* Group commit bound: a batch is committed once this many write transactions ended in it, even
 * with writers waiting (as AHL_STORE_SQLITE_COMMIT_BATCH_MAX bounds SQLite's). */
#define PG_BATCH_MAX 64
/* Named statements a connection can remember (every part's together). */
#define PREP_SLOTS 512
/* Statements sent ahead (ahl__pg_send) before their results are read. */
#define PIPE_MAX 256
/* The first key of the writers' advisory lock. */
#define AHL_PG_LOCK_WRITE 0x61686c57 /* "ahlW" (pg_schema.c locks with "ahlS") */

struct pg_rt {
    char *sql;
    char name[24];
};

struct pg_conn {
    PGconn *c;
    /* The named statements prepared on this connection: an open-addressing set of pointers. */
    const struct ahl__pg_stmt *prep[PREP_SLOTS];
    unsigned nprep;
    struct pg_rt rt[RT_CACHE];
    unsigned rt_next; /* the slot replaced next when the cache is full */
    unsigned rt_seq;  /* numbers the run-time statements' names */
    bool piped;       /* in pipeline mode, with statements sent whose results are unread */
    bool synced;      /* ... and their sync sent too (a read transaction's end, see pool_give) */
    unsigned pending; /* those statements (ahl__pg_send, send_sql) */
    struct pg_conn *next; /* in the idle list */
};

struct pg_store {
    struct ahl_store base;
    char *uri;
    char where[256];  /* host and database, for messages (never the password) */
    char lock_sql[96]; /* the writers' advisory lock */
    pthread_mutex_t write_lock; /* held for the whole of a write transaction of this node */
    /* group commit; batch_lock guards these (taken after write_lock, never before) */
    pthread_mutex_t batch_lock;
    pthread_cond_t batch_cond;   /* members' done flags */
    unsigned write_waiting;      /* threads in pg_begin(write) not yet holding write_lock */
    unsigned write_intent;       /* writers announced by ahl_store_write_intent, not yet begun */
    pthread_cond_t arrive_cond;  /* write_waiting rose or write_intent fell (CLOCK_MONOTONIC) */
    bool batch_open;             /* batch_conn is inside the writers' transaction */
    struct pg_conn *batch_conn;  /* out of the pool while the batch is open */
    unsigned batch_txs;          /* write transactions ended in the open batch */
    struct pg_waiter *members;   /* committed members waiting for the batch's COMMIT */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct pg_conn *idle;
    unsigned conns, max_conns;
};

/* How a write transaction's own writes are undone (see "Group commit" above). */
enum pg_undo {
    UNDO_ALL,       /* it began the PostgreSQL transaction: ROLLBACK (nothing else is in it yet) */
    UNDO_SAVEPOINT, /* a later member: ROLLBACK TO its savepoint */
    UNDO_NOTHING,   /* its savepoint could not be made: it wrote nothing */
};

struct pg_tx {
    struct ahl_store_tx base;
    struct pg_store *owner;
    struct pg_conn *conn;
    enum pg_undo undo; /* write transactions */
    bool kept;         /* kept_version is valid (ahl__pg_keep_version) */
    struct ahl_version_rec kept_version;
};

/* A committed member of a batch waiting for the batch's COMMIT (on its thread's stack). */
struct pg_waiter {
    struct pg_waiter *next;
    int rc;
    bool done;
};

static int write_end(struct pg_tx *tx, bool commit);

/* ---- results and parameters ---------------------------------------------------------------- */

int ahl__pg_result_rc(const PGresult *r)
{
    if (!r)
        return AHL_EIO;
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
    case PGRES_PIPELINE_SYNC:
        return 0;
    default:
        break;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && !strcmp(state, "23505"))
        return AHL_ECONFLICT;
    if (state && !strcmp(state, "53100"))
        return AHL_ENOSPC;
    return AHL_EIO;
}

void ahl__pg_text(const PGresult *r, int row, int col, char *out, size_t cap)
{
    size_t n = 0;
    if (!PQgetisnull(r, row, col)) {
        n = (size_t)PQgetlength(r, row, col);
        if (n >= cap)
            n = cap - 1;
        memcpy(out, PQgetvalue(r, row, col), n);
    }
    out[n] = '\0';
}

int64_t ahl__pg_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool ahl__pg_bool(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return false;
    const char *v = PQgetvalue(r, row, col);
    if (v[0] == 't')
        return true;
    return strtoll(v, NULL, 10) != 0;
}

const char *ahl__pg_i64(struct ahl__pg_num *n, int64_t v)
{
    snprintf(n->s, sizeof n->s, "%" PRId64, v);
    return n->s;
}

/* ---- connections --------------------------------------------------------------------------- */

/* Server notices ("relation ... already exists, skipping") are not worth a line of the log. */
static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void conn_close(struct pg_conn *pc)
{
    if (!pc)
        return;
    for (int i = 0; i < RT_CACHE; i++)
        free(pc->rt[i].sql);
    PQfinish(pc->c);
    free(pc);
}

static int conn_open(struct pg_store *p, struct pg_conn **out)
{
    struct pg_conn *pc = calloc(1, sizeof *pc);
    if (!pc)
        return AHL_ENOMEM;
    pc->c = PQconnectdb(p->uri);
    if (!pc->c || PQstatus(pc->c) != CONNECTION_OK) {
        const char *msg = pc->c ? PQerrorMessage(pc->c) : "out of memory\n";
        size_t n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            n--;
        ahl_error("cannot connect to PostgreSQL (%s): %.*s", p->where, (int)n, msg);
        conn_close(pc);
        return AHL_EIO;
    }
    PQsetNoticeProcessor(pc->c, quiet_notices, NULL);
    *out = pc;
    return 0;
}

/* The error message of a result or, without one, of the connection, without its final newline. */
static void log_failure(PGconn *c, const PGresult *r, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : "";
    if (!*msg)
        msg = PQerrorMessage(c);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    ahl_error("postgres: %s: %.*s", what, (int)n, msg);
}

/* The store error of r, logged (with what) when it is not one the caller expects of a statement
 * (a duplicate). Clears r unless the caller keeps it (out). */
static int finish(PGconn *c, PGresult *r, const char *what, PGresult **out)
{
    int rc = ahl__pg_result_rc(r);
    if (rc < 0) {
        if (rc != AHL_ECONFLICT)
            log_failure(c, r, what);
        PQclear(r);
        return rc;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* Runs sql (no parameters, possibly several statements) on c. */
static int exec(PGconn *c, const char *sql)
{
    return finish(c, PQexec(c, sql), sql, NULL);
}

/* ---- named statements ---------------------------------------------------------------------- */

static unsigned prep_slot(const struct ahl__pg_stmt *st)
{
    uintptr_t h = (uintptr_t)st;
    h ^= h >> 17;
    h *= 0x9e3779b1u;
    return (unsigned)(h >> 7) % PREP_SLOTS;
}

/* Whether st is prepared on pc. */
static bool prep_known(const struct pg_conn *pc, const struct ahl__pg_stmt *st)
{
    for (unsigned i = prep_slot(st); pc->prep[i]; i = (i + 1) % PREP_SLOTS)
        if (pc->prep[i] == st)
            return true;
    return false;
}

/* Prepares st on pc unless it was already. */
static int prepare(struct pg_conn *pc, const struct ahl__pg_stmt *st)
{
    unsigned i = prep_slot(st);
    while (pc->prep[i]) {
        if (pc->prep[i] == st)
            return 0;
        i = (i + 1) % PREP_SLOTS;
    }
    if (pc->nprep >= PREP_SLOTS - 1)
        AHL_BUG("more than %d named PostgreSQL statements", PREP_SLOTS - 1);
    int rc = finish(pc->c, PQprepare(pc->c, st->name, st->sql, 0, NULL), st->name, NULL);
    if (rc < 0)
        return rc == AHL_ECONFLICT ? AHL_EIO : rc;
    pc->prep[i] = st;
    pc->nprep++;
    return 0;
}

/* Reads the results of the statements sent on pc in pipeline mode and leaves it: 0, or the first
 * one's failure (logged; the transaction is then aborted). With last, the last statement's
 * result is not judged but handed over in *last (NULL after an earlier failure). */
static int drain_last(struct pg_conn *pc, PGresult **last)
{
    if (last)
        *last = NULL;
    if (!pc->piped)
        return 0;
    PGconn *c = pc->c;
    int rc = 0;
    if (!pc->synced && PQpipelineSync(c) != 1)
        rc = AHL_EIO;
    for (unsigned i = 0; i < pc->pending && rc == 0; i++) {
        PGresult *r = PQgetResult(c);
        if (last && i + 1 == pc->pending && r) {
            *last = r;
            PQclear(PQgetResult(c));
            break;
        }
        int e = r && PQresultStatus(r) != PGRES_PIPELINE_ABORTED ? ahl__pg_result_rc(r) : AHL_EIO;
        if (e < 0) {
            log_failure(c, r, "a statement sent ahead");
            rc = e == AHL_ECONFLICT ? AHL_EIO : e;
        }
        PQclear(r);
        if (r)
            PQclear(PQgetResult(c)); /* the NULL ending each statement's results */
    }
    /* After a failure, the rest of the pipeline up to the sync answers PIPELINE_ABORTED. */
    for (int guard = 0; guard < 2 * (int)pc->pending + 2; guard++) {
        PGresult *r = PQgetResult(c);
        if (!r) {
            if (PQstatus(c) == CONNECTION_BAD)
                break;
            continue;
        }
        bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    if (PQexitPipelineMode(c) != 1 && rc == 0) {
        log_failure(c, NULL, "leaving pipeline mode");
        rc = AHL_EIO;
    }
    pc->piped = false;
    pc->synced = false;
    pc->pending = 0;
    return rc;
}

static int drain(struct pg_conn *pc)
{
    return drain_last(pc, NULL);
}

/* Enters pipeline mode on pc unless it is in it already. */
static int pipe_enter(struct pg_conn *pc)
{
    if (pc->piped)
        return 0;
    if (PQenterPipelineMode(pc->c) != 1) {
        log_failure(pc->c, NULL, "entering pipeline mode");
        return AHL_EIO;
    }
    pc->piped = true;
    return 0;
}

/* Sends sql (one statement without parameters: BEGIN, SAVEPOINT, COMMIT...) ahead on pc like
 * ahl__pg_send: its result is read with the next statement's. 0, or the failure to send. */
static int send_sql(struct pg_conn *pc, const char *sql)
{
    int rc = pipe_enter(pc);
    if (rc < 0)
        return rc;
    if (PQsendQueryParams(pc->c, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
        log_failure(pc->c, NULL, sql);
        drain(pc);
        return AHL_EIO;
    }
    pc->pending++;
    return 0;
}

void ahl__pg_keep_version(struct ahl_store_tx *tx, const struct ahl_version_rec *v)
{
    struct pg_tx *t = (struct pg_tx *)tx;
    t->kept = v != NULL;
    if (v)
        t->kept_version = *v;
}

const struct ahl_version_rec *ahl__pg_kept_version(struct ahl_store_tx *tx)
{
    struct pg_tx *t = (struct pg_tx *)tx;
    return t->kept ? &t->kept_version : NULL;
}

PGconn *ahl__pg_conn(struct ahl_store_tx *tx)
{
    ((struct pg_tx *)tx)->kept = false;
    struct pg_conn *pc = ((struct pg_tx *)tx)->conn;
    drain(pc); /* a failure aborted the transaction: its next statement or COMMIT fails */
    return pc->c;
}

int ahl__pg_send(struct ahl_store_tx *tx, const struct ahl__pg_stmt *st, int n,
                 const char *const *vals, const int *lens, const int *fmts)
{
    ((struct pg_tx *)tx)->kept = false;
    struct pg_conn *pc = ((struct pg_tx *)tx)->conn;
    int rc;
    /* Prepared in its own round trip the first time, so that the set of prepared statements
     * only ever holds ones the server accepted. */
    if (!pc->piped && (rc = prepare(pc, st)) < 0)
        return rc;
    if (pc->piped && !prep_known(pc, st)) {
        if ((rc = drain(pc)) < 0 || (rc = prepare(pc, st)) < 0)
            return rc;
    }
    if ((rc = pipe_enter(pc)) < 0)
        return rc;
    if (PQsendQueryPrepared(pc->c, st->name, n, vals, lens, fmts, 0) != 1) {
        log_failure(pc->c, NULL, st->name);
        drain(pc);
        return AHL_EIO;
    }
    pc->pending++;
    /* Sent in batches, so that a long run of statements never fills both sockets' buffers. */
    if (pc->pending >= PIPE_MAX)
        return drain(pc);
    return 0;
}

int ahl__pg_run(struct ahl_store_tx *tx, const struct ahl__pg_stmt *st, int n,
                const char *const *vals, const int *lens, const int *fmts, bool result_binary,
                PGresult **out)
{
    ((struct pg_tx *)tx)->kept = false;
    struct pg_conn *pc = ((struct pg_tx *)tx)->conn;
    int rc;
    if (pc->piped && prep_known(pc, st)) {
        /* After statements sent ahead: in the same pipeline, one round trip for all. */
        PGresult *last = NULL;
        if (PQsendQueryPrepared(pc->c, st->name, n, vals, lens, fmts, result_binary ? 1 : 0) !=
            1) {
            log_failure(pc->c, NULL, st->name);
            drain(pc);
            return AHL_EIO;
        }
        pc->pending++;
        if ((rc = drain_last(pc, &last)) < 0) {
            PQclear(last);
            return rc;
        }
        return finish(pc->c, last, st->name, out);
    }
    if ((rc = drain(pc)) < 0 || (rc = prepare(pc, st)) < 0)
        return rc;
    return finish(pc->c,
                  PQexecPrepared(pc->c, st->name, n, vals, lens, fmts, result_binary ? 1 : 0),
                  st->name, out);
}

int ahl__pg_run_sql(struct ahl_store_tx *tx, const char *sql, bool cache, int n,
                    const char *const *vals, const int *lens, const int *fmts, bool result_binary,
                    PGresult **out)
{
    ((struct pg_tx *)tx)->kept = false;
    struct pg_conn *pc = ((struct pg_tx *)tx)->conn;
    int fmt = result_binary ? 1 : 0;
    int rc = drain(pc);
    if (rc < 0)
        return rc;
    if (!cache)
        return finish(pc->c, PQexecParams(pc->c, sql, n, NULL, vals, lens, fmts, fmt), sql, out);
    struct pg_rt *slot = NULL;
    for (int i = 0; i < RT_CACHE && pc->rt[i].sql; i++)
        if (!strcmp(pc->rt[i].sql, sql)) {
            slot = &pc->rt[i];
            break;
        }
    if (!slot) {
        slot = &pc->rt[pc->rt_next];
        pc->rt_next = (pc->rt_next + 1) % RT_CACHE;
        if (slot->sql) {
            char dealloc[48];
            snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", slot->name);
            free(slot->sql);
            slot->sql = NULL;
            if ((rc = exec(pc->c, dealloc)) < 0)
                return rc;
        }
        snprintf(slot->name, sizeof slot->name, "ahl_rt_%u", pc->rt_seq++);
        rc = finish(pc->c, PQprepare(pc->c, slot->name, sql, 0, NULL), sql, NULL);
        if (rc < 0)
            return rc == AHL_ECONFLICT ? AHL_EIO : rc;
        if (!(slot->sql = strdup(sql))) {
            char dealloc[48];
            snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", slot->name);
            exec(pc->c, dealloc);
            return AHL_ENOMEM;
        }
    }
    return finish(pc->c, PQexecPrepared(pc->c, slot->name, n, vals, lens, fmts, fmt), sql, out);
}

/* ---- transactions -------------------------------------------------------------------------- */

/* Takes an idle connection of p's pool, or opens one, or waits for one. */
static int pool_take(struct pg_store *p, struct pg_conn **out)
{
    struct pg_conn *pc = NULL;
    pthread_mutex_lock(&p->pool_lock);
    while (!p->idle && p->conns >= p->max_conns)
        pthread_cond_wait(&p->pool_cond, &p->pool_lock);
    if (p->idle) {
        pc = p->idle;
        p->idle = pc->next;
    } else {
        p->conns++;
    }
    pthread_mutex_unlock(&p->pool_lock);
    /* A server that dropped the connection while it was idle (a terminated backend, a restart)
     * has said so on its socket: reading what arrived finds it without a round trip (its last
     * message first, then the end of the stream: read twice). BEGIN is sent ahead of the first
     * statement, so that this is the only chance to use another connection instead. */
    if (pc && (!PQconsumeInput(pc->c) || !PQconsumeInput(pc->c) ||
               PQstatus(pc->c) != CONNECTION_OK)) {
        conn_close(pc); /* broken while idle: replaced below */
        pc = NULL;
    }
    /* The end of the read transaction it served last: read now (the answers have long arrived,
     * usually); one that left it inside a transaction is replaced. */
    if (pc && pc->piped &&
        (drain(pc) < 0 || PQtransactionStatus(pc->c) != PQTRANS_IDLE)) {
        conn_close(pc);
        pc = NULL;
    }
    if (!pc) {
        int rc = conn_open(p, &pc);
        if (rc < 0) {
            pthread_mutex_lock(&p->pool_lock);
            p->conns--;
            pthread_cond_signal(&p->pool_cond);
            pthread_mutex_unlock(&p->pool_lock);
            return rc;
        }
    }
    *out = pc;
    return 0;
}

/* Gives pc back to the pool; a connection that broke, or is still inside a transaction it could
 * not end, is closed instead. One whose last statements were sent and synced (a read
 * transaction's end, read_end) goes back unread: pool_take reads their results. */
static void pool_give(struct pg_store *p, struct pg_conn *pc)
{
    if (!pc->synced)
        drain(pc);
    bool keep = PQstatus(pc->c) == CONNECTION_OK &&
                (pc->synced || PQtransactionStatus(pc->c) == PQTRANS_IDLE);
    if (!keep)
        conn_close(pc);
    pthread_mutex_lock(&p->pool_lock);
    if (keep) {
        pc->next = p->idle;
        p->idle = pc;
    } else {
        p->conns--;
    }
    pthread_cond_signal(&p->pool_cond);
    pthread_mutex_unlock(&p->pool_lock);
}

#define READ_BEGIN "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

/* Takes a connection and sends BEGIN (and then, unless NULL, then: the writers' lock) ahead on
 * it: their results are read with the transaction's first statement, which fails if they did.
 * An idle connection whose server went away (a restart, a terminated backend) is found out by
 * pool_take, or here when sending fails: such a one is dropped and the transaction begun on
 * another, as nothing was done yet. Every pooled connection may have gone, and one more is
 * opened fresh. */
static int pool_begin(struct pg_store *p, const char *begin, const char *then,
                      struct pg_conn **out)
{
    for (unsigned attempt = 0;; attempt++) {
        struct pg_conn *pc;
        int rc = pool_take(p, &pc);
        if (rc < 0)
            return rc;
        if ((rc = send_sql(pc, begin)) == 0 && (!then || (rc = send_sql(pc, then)) == 0)) {
            *out = pc;
            return 0;
        }
        bool lost = PQstatus(pc->c) == CONNECTION_BAD;
        pool_give(p, pc);
        if (!lost || attempt >= p->max_conns)
            return rc;
    }
}

/* COMMIT on c: 0, or AHL_EIO (logged), also when the server had aborted the transaction (a
 * statement of it failed) and answered ROLLBACK. */
static int commit_sql(PGconn *c)
{
    PGresult *r = PQexec(c, "COMMIT");
    int rc = ahl__pg_result_rc(r);
    if (rc == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        ahl_error("postgres: COMMIT of a failed transaction rolled it back");
        rc = AHL_EIO;
    } else if (rc < 0) {
        log_failure(c, r, "COMMIT");
        if (rc == AHL_ECONFLICT)
            rc = AHL_EIO;
    }
    PQclear(r);
    return rc;
}

static int pg_begin(struct ahl_store *s, bool write, struct ahl_store_tx **out)
{
    struct pg_store *p = (struct pg_store *)s;
    struct pg_tx *tx = calloc(1, sizeof *tx);
    int rc;
    if (!tx)
        return AHL_ENOMEM;
    tx->base.store = s;
    tx->base.write = write;
    tx->owner = p;
    if (!write) {
        if ((rc = pool_begin(p, READ_BEGIN, NULL, &tx->conn)) < 0) {
            free(tx);
            return rc;
        }
        *out = &tx->base;
        return 0;
    }
    pthread_mutex_lock(&p->batch_lock);
    p->write_waiting++;
    pthread_cond_signal(&p->arrive_cond);
    pthread_mutex_unlock(&p->batch_lock);
    pthread_mutex_lock(&p->write_lock);
    pthread_mutex_lock(&p->batch_lock);
    p->write_waiting--;
    bool open = p->batch_open;
    pthread_mutex_unlock(&p->batch_lock);
    if (open) {
        /* A later member of the open batch: its own writes are a savepoint's. */
        tx->conn = p->batch_conn;
        tx->undo = UNDO_SAVEPOINT;
        /* Sent ahead: a failure fails the transaction's first statement, and leaves the batch's
         * PostgreSQL transaction aborted, so that its COMMIT fails every member. */
        if ((rc = send_sql(tx->conn, "SAVEPOINT ahl_tx")) < 0) {
            tx->undo = UNDO_NOTHING;
            write_end(tx, false);
            return rc;
        }
    } else {
        if ((rc = pool_begin(p, "BEGIN", p->lock_sql, &tx->conn)) < 0) {
            pthread_mutex_unlock(&p->write_lock);
            free(tx);
            return rc;
        }
        pthread_mutex_lock(&p->batch_lock);
        p->batch_open = true;
        p->batch_conn = tx->conn;
        p->batch_txs = 0;
        pthread_mutex_unlock(&p->batch_lock);
        /* The batch's first transaction needs no savepoint: undoing it is ROLLBACK. */
        tx->undo = UNDO_ALL;
    }
    *out = &tx->base;
    return 0;
}

/* Ends a write transaction (see "Group commit" above): its own part first (RELEASE or ROLLBACK
 * TO its savepoint; the batch's first one, rolling back, rolls the whole PostgreSQL transaction
 * back, as it holds nothing else), then the batch: handed on to a waiting writer, or committed,
 * every committed member woken with the COMMIT's result. Returns what ahl_store_commit returns
 * for tx. */
static int write_end(struct pg_tx *tx, bool commit)
{
    struct pg_store *p = tx->owner;
    PGconn *c = tx->conn->c;
    int rc = 0;
    /* A later member committing releases its savepoint in the same round trip as the results of
     * its statements sent ahead (after a failure among them, RELEASE is not run). */
    if (commit && tx->undo == UNDO_SAVEPOINT)
        rc = send_sql(tx->conn, "RELEASE SAVEPOINT ahl_tx");
    int drc = drain(tx->conn); /* a failure there aborted the transaction */
    if (rc == 0)
        rc = drc;
    bool failed = rc < 0 || PQtransactionStatus(c) == PQTRANS_INERROR;
    if (commit && failed) {
        /* A statement of it failed: the caller should have rolled back (unless it was one sent
         * ahead, whose failure shows only now). */
        if (rc == 0)
            ahl_error("postgres: a write transaction with a failed statement was committed: "
                      "rolled back");
        commit = false;
        rc = rc < 0 ? rc : AHL_EIO;
    } else if (!commit) {
        rc = 0;
    }
    if (tx->undo == UNDO_ALL && !commit) {
        if (PQtransactionStatus(c) != PQTRANS_IDLE)
            exec(c, "ROLLBACK");
        pthread_mutex_lock(&p->batch_lock);
        p->batch_open = false;
        p->batch_conn = NULL;
        pthread_mutex_unlock(&p->batch_lock);
        pool_give(p, tx->conn);
        pthread_mutex_unlock(&p->write_lock);
        free(tx);
        return rc;
    }
    if (tx->undo == UNDO_SAVEPOINT && !commit)
        exec(c, "ROLLBACK TO SAVEPOINT ahl_tx; RELEASE SAVEPOINT ahl_tx");
    pthread_mutex_lock(&p->batch_lock);
    p->batch_txs++;
    if (commit && !p->write_waiting && p->write_intent && p->batch_txs < PG_BATCH_MAX &&
        PQtransactionStatus(c) == PQTRANS_INTRANS) {
        /* Writers are computing their updates: wait a little for one to join this COMMIT. */
        struct timespec until = ahl_deadline(CLOCK_MONOTONIC, AHL_STORE_COMMIT_DELAY_US);
        while (!p->write_waiting && p->write_intent)
            if (pthread_cond_timedwait(&p->arrive_cond, &p->batch_lock, &until) == ETIMEDOUT)
                break;
    }
    bool hand_on = p->write_waiting > 0 && p->batch_txs < PG_BATCH_MAX &&
                   PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_INTRANS;
    if (hand_on) {
        /* The next writer goes on in this PostgreSQL transaction; a committed member waits for
         * the COMMIT that makes it durable. */
        struct pg_waiter w = {.next = NULL, .rc = 0, .done = !commit};
        if (commit) {
            w.next = p->members;
            p->members = &w;
        }
        pthread_mutex_unlock(&p->write_lock);
        while (!w.done)
            pthread_cond_wait(&p->batch_cond, &p->batch_lock);
        pthread_mutex_unlock(&p->batch_lock);
        free(tx);
        return commit ? w.rc : rc;
    }
    pthread_mutex_unlock(&p->batch_lock);
    int brc = commit_sql(c);
    if (brc < 0 && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    pthread_mutex_lock(&p->batch_lock);
    for (struct pg_waiter *w = p->members; w; w = w->next) {
        w->rc = brc;
        w->done = true;
    }
    p->members = NULL;
    p->batch_open = false;
    p->batch_conn = NULL;
    pthread_cond_broadcast(&p->batch_cond);
    pthread_mutex_unlock(&p->batch_lock);
    pool_give(p, tx->conn);
    pthread_mutex_unlock(&p->write_lock);
    free(tx);
    return commit ? brc : rc;
}

static void pg_write_intent(struct ahl_store *s, int delta)
{
    struct pg_store *p = (struct pg_store *)s;
    pthread_mutex_lock(&p->batch_lock);
    p->write_intent = (unsigned)((int)p->write_intent + delta);
    if (!p->write_intent)
        pthread_cond_signal(&p->arrive_cond);
    pthread_mutex_unlock(&p->batch_lock);
}

/* Ends a read transaction with sql (ROLLBACK, or COMMIT of one whose statements all succeeded:
 * neither can fail then, and nothing was written) without waiting for the answer: it is sent,
 * with a sync, and read when the connection is next taken (pool_take). */
static void read_end(struct pg_tx *tx, const char *sql)
{
    struct pg_conn *pc = tx->conn;
    if (send_sql(pc, sql) == 0) {
        if (PQpipelineSync(pc->c) == 1)
            pc->synced = true;
        else
            drain(pc);
    }
    pool_give(tx->owner, pc);
    free(tx);
}

static void pg_rollback(struct ahl_store_tx *t)
{
    struct pg_tx *tx = (struct pg_tx *)t;
    if (tx->base.write) {
        write_end(tx, false);
        return;
    }
    read_end(tx, "ROLLBACK");
}

static int pg_commit(struct ahl_store_tx *t)
{
    struct pg_tx *tx = (struct pg_tx *)t;
    if (tx->base.write)
        return write_end(tx, true);
    /* Statements sent ahead (BEGIN, if nothing else) are read first: a failure among them fails
     * the commit, as a COMMIT the server answered with ROLLBACK would. */
    int rc = drain(tx->conn);
    if (rc == 0 && PQtransactionStatus(tx->conn->c) != PQTRANS_INTRANS) {
        ahl_error("postgres: COMMIT of a failed transaction rolled it back");
        rc = AHL_EIO;
    }
    read_end(tx, rc == 0 ? "COMMIT" : "ROLLBACK");
    return rc;
}

static void pg_close(struct ahl_store *s)
{
    struct pg_store *p = (struct pg_store *)s;
    while (p->idle) {
        struct pg_conn *pc = p->idle;
        p->idle = pc->next;
        conn_close(pc);
    }
    pthread_mutex_destroy(&p->write_lock);
    pthread_mutex_destroy(&p->batch_lock);
    pthread_cond_destroy(&p->batch_cond);
    pthread_cond_destroy(&p->arrive_cond);
    pthread_mutex_destroy(&p->pool_lock);
    pthread_cond_destroy(&p->pool_cond);
    free(p->uri);
    free(p);
}

/* ---- the ops table and opening ------------------------------------------------------------- */

/* ahl_store_compact: VACUUM runs outside any transaction, so on a connection of its own rather
 * than one of the pool's (which are in pipeline mode). */
static int pg_compact(struct ahl_store *s, bool full)
{
    struct pg_store *p = (struct pg_store *)s;
    struct pg_conn *pc = NULL;
    int rc = conn_open(p, &pc);
    if (rc < 0)
        return rc;
    rc = exec(pc->c, full ? "VACUUM FULL chunk, version, imageset, frame, search"
                          : "VACUUM chunk, version, imageset, frame, search");
    conn_close(pc);
    return rc;
}

static struct ahl_store_ops pg_ops;
static pthread_once_t pg_ops_once = PTHREAD_ONCE_INIT;

static void pg_ops_fill(void)
{
    pg_ops.name = "postgres";
    pg_ops.close = pg_close;
    pg_ops.begin = pg_begin;
    pg_ops.commit = pg_commit;
    pg_ops.rollback = pg_rollback;
    pg_ops.write_intent = pg_write_intent;
    pg_ops.compact = pg_compact;
    ahl__pg_rows_ops(&pg_ops);
    ahl__pg_search_ops(&pg_ops);
    ahl__pg_qido_ops(&pg_ops);
    ahl__pg_jobs_ops(&pg_ops);
    ahl__pg_events_ops(&pg_ops);
}

/* Every op the backend must have (write_intent is optional). */
#define PG_REQUIRED_OPS(X)                                                                        \
    X(datastore_put) X(datastore_get) X(datastore_list) X(datastore_delete)                       \
    X(datastore_count_imagesets) X(tag_put) X(tag_delete) X(tag_list) X(tag_delete_all) X(tag_scan)           \
    X(imageset_put) X(imageset_advance) X(imageset_get) X(imageset_list) X(imageset_by_study)     \
    X(imageset_touch)                                                                             \
    X(version_put) X(version_update) X(version_get) X(version_list) X(version_scan)               \
    X(chunk_put) X(chunk_get) X(chunk_scan) X(chunk_stats) X(search_put) X(search_get)            \
    X(chunk_list) X(chunk_delete) X(gc_roots) X(gc_versions) X(frame_fence_get) X(frame_fence_bump) X(compact)                           \
    X(search_delete) X(search_query) X(search_plan) X(frame_put) X(frame_get) X(frame_copy)       \
    X(frame_delete_set) X(frame_list) X(frame_backfill_next) X(frame_backfill_done) X(job_put)   \
    X(job_get) X(job_list) X(job_claim) X(job_renew) X(job_release) X(qido_set_get)              \
    X(job_options_put) X(job_options_get)                                                        \
    X(qido_set_put) X(qido_set_delete) X(qido_series_put)                                        \
    X(qido_series_delete) X(qido_series_touch) X(qido_instance_put) X(qido_instance_delete)      \
    X(qido_study_refresh) X(qido_query) X(qido_plan) X(qido_backfill_next)                       \
    X(qido_backfill_done) X(event_put) X(event_list) X(event_delete) X(event_trim) X(event_lease)  \
    X(tombstones_expire)

/* An op added to store.h must be added to the list above too (close, begin, commit, rollback and
 * write_intent are the others). */
#define PG_COUNT_OP(m) +1
_Static_assert(sizeof(struct ahl_store_ops) ==
                   sizeof(const char *) + (5 PG_REQUIRED_OPS(PG_COUNT_OP)) * sizeof(void (*)(void)),
               "an op of struct ahl_store_ops is missing from PG_REQUIRED_OPS");
#undef PG_COUNT_OP

/* The first op the backend lacks, or NULL when it has them all. */
static const char *pg_ops_missing(const struct ahl_store_ops *ops)
{
#define PG_CHECK_OP(m)                                                                            \
    if (!ops->m)                                                                                  \
        return #m;
    PG_REQUIRED_OPS(PG_CHECK_OP)
#undef PG_CHECK_OP
    return NULL;
}

/* Host (or socket directory) and database of a connection URI, for messages: libpq parses it, so
 * that a password in it is never copied. */
static void describe(const char *uri, char *out, size_t cap)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &err);
    const char *host = NULL, *db = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!strcmp(o->keyword, "host") && o->val)
            host = o->val;
        else if (!strcmp(o->keyword, "dbname") && o->val)
            db = o->val;
    }
    snprintf(out, cap, "host %s, database %s", host ? host : "(default)", db ? db : "(default)");
    PQconninfoFree(opts);
    PQfreemem(err);
}

int ahl_store_open_postgres(const char *uri, unsigned max_conns, struct ahl_store **out)
{
    struct pg_store *p;
    struct pg_conn *pc = NULL;
    PGresult *r = NULL;
    int rc;
    pthread_once(&pg_ops_once, pg_ops_fill);
    const char *missing = pg_ops_missing(&pg_ops);
    if (missing) {
        ahl_error("PostgreSQL backend incomplete: %s missing", missing);
        return AHL_EINVAL;
    }
    if (!uri || !ahl_store_is_postgres(uri))
        return AHL_EINVAL;
    if (!(p = calloc(1, sizeof *p)))
        return AHL_ENOMEM;
    p->base.ops = &pg_ops;
    p->max_conns = max_conns ? max_conns : 16;
    pthread_mutex_init(&p->write_lock, NULL);
    pthread_mutex_init(&p->batch_lock, NULL);
    pthread_cond_init(&p->batch_cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->arrive_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->pool_lock, NULL);
    pthread_cond_init(&p->pool_cond, NULL);
    describe(uri, p->where, sizeof p->where);
    if (!(p->uri = strdup(uri))) {
        rc = AHL_ENOMEM;
        goto fail;
    }
    if ((rc = conn_open(p, &pc)) < 0)
        goto fail;
    p->conns = 1;
    r = PQexec(pc->c, "SELECT oid FROM pg_namespace WHERE nspname = current_schema()");
    if ((rc = ahl__pg_result_rc(r)) < 0 || PQntuples(r) != 1) {
        if (rc == 0)
            ahl_error("postgres (%s): no schema of the search path exists to keep tables in",
                      p->where);
        else
            log_failure(pc->c, r, "current schema");
        rc = AHL_EIO;
        goto fail;
    }
    int64_t schema = ahl__pg_int(r, 0, 0);
    snprintf(p->lock_sql, sizeof p->lock_sql, "SELECT pg_advisory_xact_lock(%d, %" PRId64 ")",
             AHL_PG_LOCK_WRITE, (int64_t)(int32_t)(uint32_t)schema);
    if ((rc = ahl__pg_schema_migrate(pc->c)) < 0)
        goto fail;
    PQclear(r);
    p->idle = pc;
    *out = &p->base;
    return 0;
fail:
    PQclear(r);
    conn_close(pc);
    pg_close(&p->base);
    return rc;
}
