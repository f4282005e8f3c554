/* The entry point every fuzz target defines: libFuzzer's contract, also called by replay_main.c
 * to replay a target's seeds in builds without libFuzzer. */
#ifndef AHL_TESTS_FUZZ_H
#define AHL_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* AHL_TESTS_FUZZ_H */
