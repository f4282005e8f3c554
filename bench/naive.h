/* The update benchmark's naive baseline (bench/update.c): a versioned JSON store without
 * structure sharing. Every version is the whole document, gzip'd (level 6), in a row of its own
 * in a SQLite file of the benchmark's own (naive.db in the scratch directory, table
 * naive_versions), never in the product's store: the product's chunk table has a contract (a
 * ROOT chunk is a node of the engine's tree) that a whole-document blob does not keep.
 *
 * Calling sequence: ahl__naive_open, ahl__naive_put of the first version, then
 * ahl__naive_step per update, ahl__naive_bytes around the steps, ahl__naive_close. */
#ifndef AHL_BENCH_NAIVE_H
#define AHL_BENCH_NAIVE_H

#include <stdint.h>

#include <jansson.h>

struct ahl__naive;

/* Creates DIR/naive.db (WAL, synchronous=NORMAL, as the product's store runs) and its table.
 * 0, or -1 with a message on stderr. */
int ahl__naive_open(const char *dir, struct ahl__naive **out);
/* Stores doc, serialised and gzip'd, as version 1. 0 or -1. */
int ahl__naive_put(struct ahl__naive *n, const json_t *doc);
/* One naive update, in one write transaction: load the latest version, inflate, parse, set
 * Patient.DICOM.PatientName to "NAIVE^<k>", serialise, gzip and store the whole document as the
 * next version. 0 or -1. */
int ahl__naive_step(struct ahl__naive *n, long k);
/* The stored bytes of every version (the gzip blobs) into *bytes. 0 or -1. */
int ahl__naive_bytes(struct ahl__naive *n, uint64_t *bytes);
/* Closes the database; NULL is accepted. */
void ahl__naive_close(struct ahl__naive *n);

#endif /* AHL_BENCH_NAIVE_H */
