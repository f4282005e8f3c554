/* The entry point every fuzz target defines: libFuzzer's contract, also called by replay_main.c
 * to replay a target's seeds in builds without libFuzzer. */
#ifndef AHL_TESTS_FUZZ_H
#define AHL_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The size of the next piece of a streamed input with left bytes to go: all of it when *seed is
 * 0, else 1 to 97 bytes drawn from *seed (a linear congruential sequence), so that a target
 * feeding a streaming parser piece by piece meets split points anywhere. */
static inline size_t fuzz_piece(unsigned *seed, size_t left)
{
    if (!*seed)
        return left;
    *seed = *seed * 1103515245u + 12345u;
    size_t piece = 1 + (*seed >> 16) % 97;
    return piece < left ? piece : left;
}

/* The input as a NUL-terminated string the caller frees (NULL when out of memory). */
static inline char *ahl__fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
    }
    return text;
}

#endif /* AHL_TESTS_FUZZ_H */
