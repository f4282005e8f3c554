/* Delivery of the event outbox (docs/events.md): a dispatcher thread that reads the events the
 * store's outbox holds (written by src/meta/events.h in the transactions of the changes they
 * describe), wraps each in EventBridge's envelope and delivers it to the configured sinks: a
 * webhook (one HTTP POST of the event's JSON per event) and/or an NDJSON file (one event a line,
 * written then fsync'd). Delivery is at least once and in commit order.
 *
 * Invariants:
 *   - an event is removed from the outbox only once every sink has it (the webhook answered 2xx,
 *     the file's line is fsync'd); after a crash the events not yet removed are delivered again;
 *   - events go out one after another in sequence order; a sink failing is retried with
 *     exponential backoff, later events waiting behind the first undelivered one (so order
 *     holds), while the events stay in the database, not in memory;
 *   - one dispatcher runs at a time across all nodes sharing a store: the holder of the store's
 *     event lease (ahl_store_event_lease), renewed every third of its length;
 *   - the outbox keeps at most max_backlog events: beyond, the oldest are dropped, counted and
 *     logged (docs/decisions.md#event-backlog).
 * No request path waits for the dispatcher: requests only write rows.
 *
 *     struct ahl_events_opts o = {.webhook_url = url, .account_id = acct, .region = region};
 *     ahl_store_outbox_enable(store, true);          // before anything is served
 *     ahl_events_start(store, &o, &ev, &err);
 *     ...
 *     ahl_events_stop(ev);                           // joins the thread
 */
#ifndef AHL_EVENTS_EVENTS_H
#define AHL_EVENTS_EVENTS_H

#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "store/store.h"

struct ahl_events;

struct ahl_events_opts {
    const char *webhook_url; /* http(s)://...: POST each event; NULL: no webhook */
    const char *file_path;   /* append each event as one line; NULL: no file */
    const char *account_id;  /* the envelope's account and region, and the resources' ARNs */
    const char *region;
    uint64_t max_backlog;  /* events kept at most; 0: 1,000,000 */
    unsigned retry_max_ms; /* the longest wait between retries; 0: 60,000 */
    unsigned poll_ms;      /* how often an idle dispatcher looks for events; 0: 100 */
    unsigned lease_ms;     /* the dispatcher lease; 0: 15,000 */
    unsigned timeout_ms;   /* one webhook POST, connection included; 0: 10,000 */
};

struct ahl_events_stats {
    uint64_t delivered; /* events removed after every sink had them */
    uint64_t retries;   /* failed deliveries (each followed by a wait) */
    uint64_t dropped;   /* events removed unsent beyond max_backlog */
};

/* Starts the dispatcher thread. At least one sink must be given (AHL_EINVAL otherwise, or for a
 * URL that is not http(s), err saying which); the file is opened (created 0600) here, so that a
 * path that cannot be written fails at start. */
int ahl_events_start(struct ahl_store *s, const struct ahl_events_opts *o, struct ahl_events **out,
                     struct ahl_err *err);
/* Stops the thread (an undelivered event stays in the outbox for the next start) and frees
 * everything. NULL is accepted. */
void ahl_events_stop(struct ahl_events *d);
void ahl_events_stats(struct ahl_events *d, struct ahl_events_stats *out);

/* Appends the EventBridge event of rec to out:
 *   {"version":"0","id":..,"detail-type":..,"source":"aws.medical-imaging","account":..,
 *    "time":"YYYY-MM-DDTHH:MM:SSZ","region":..,"resources":["arn:aws:medical-imaging:REGION:
 *    ACCOUNT:<rec->resource>"],"detail":<rec->detail>}
 * 0, AHL_ENOMEM or AHL_ETOOBIG. */
int ahl_events_envelope(const struct ahl_event_rec *rec, const char *account_id, const char *region,
                        struct ahl_buf *out);

#endif /* AHL_EVENTS_EVENTS_H */
