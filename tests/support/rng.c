/*
 * rng.c - test support: splitmix64 (see rng.h).  The tests' corpora and
 * query sequences depend on this exact sequence, so its constants must
 * never change: a changed stream silently changes what every seeded test
 * checks.
 */
#include "rng.h"

uint64_t sh_test_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
