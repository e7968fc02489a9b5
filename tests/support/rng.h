/*
 * rng.h - test support: the random generator behind the tests' fixed-seed
 * corpora and queries.
 */
#ifndef SAHEL_TEST_RNG_H
#define SAHEL_TEST_RNG_H

#include <stdint.h>

/* splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", 2014): advances *state and returns the next value.  Every
 * state, 0 included, is a valid seed; the same seed gives the same
 * sequence on every machine. */
uint64_t sh_test_splitmix64(uint64_t *state);

#endif /* SAHEL_TEST_RNG_H */
