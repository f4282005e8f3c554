/* Synthetic image-set documents: CT-like series whose instances carry the attributes a real
 * scanner writes (~1.5 KB of JSON each), for the benchmarks and the engine's unit tests; not part
 * of the product (the library ahl_synth, bench/CMakeLists.txt). Deterministic for a given seed, so two runs build the same document. */
#ifndef AHL_BENCH_SYNTH_H
#define AHL_BENCH_SYNTH_H

#include <stdint.h>

#include <jansson.h>

/* A normalized document (the shape ahl_meta_imageset_create takes) with nseries series of
 * ninstances instances each. NULL when out of memory. UIDs are "1.2.826.0.1.3680043.10.<seed>..."
 * so different seeds never collide. */
json_t *ahl_synth_doc(unsigned nseries, unsigned ninstances, uint32_t seed);

/* One instance object of series s, number i (as in ahl_synth_doc). */
json_t *ahl_synth_instance(uint32_t seed, unsigned s, unsigned i);

/* The UIDs ahl_synth_doc uses: study, series s, instance i of series s. */
void ahl_synth_study_uid(uint32_t seed, char out[64]);
void ahl_synth_series_uid(uint32_t seed, unsigned s, char out[64]);
void ahl_synth_instance_uid(uint32_t seed, unsigned s, unsigned i, char out[64]);

#endif /* AHL_BENCH_SYNTH_H */
