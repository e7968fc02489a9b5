/*
 * keysort.c - sorting byte strings (terms, article ids) in memcmp order,
 * a shorter string before the longer one it begins: the order of a
 * segment's dictionary and of its id index.
 *
 * A key carries its string's first 8 bytes as a big-endian number
 * (zero-padded), so that most comparisons are one integer compare, and
 * the index of what it sorts.  The sort is an introsort with that compare
 * inlined: quicksort on a median of three down to runs of 16, finished by
 * insertion, and heapsort for a range still unsorted past 2 log2 n levels
 * (an order that defeats the medians), so n log n comparisons always.
 * qsort's merge sort, calling its compare through a pointer, took 2-3% of
 * a one-thread build of short articles (two sorts: terms and ids); this
 * takes about a third of that.
 */
#include "index.h"

sh_strkey sh_strkey_make(const uint8_t *p, uint32_t len, uint32_t idx) {
    uint64_t pre = 0;
    for (uint32_t i = 0; i < 8; i++) pre = pre << 8 | (i < len ? p[i] : 0);
    return (sh_strkey){pre, p, len, idx};
}

/* Whether x sorts before y.  Equal prefixes mean equal first min(len, 8)
 * bytes, and the shorter key's zero padding equal to the longer's bytes
 * there: the rest, then the lengths, decide. */
static inline bool key_lt(const sh_strkey *x, const sh_strkey *y) {
    if (x->pre != y->pre) return x->pre < y->pre;
    uint32_t m = SH_MIN(x->len, y->len);
    if (m > 8) {
        int c = memcmp(x->p + 8, y->p + 8, m - 8);
        if (c) return c < 0;
    }
    return x->len < y->len;
}

static inline void key_swap(sh_strkey *x, sh_strkey *y) {
    sh_strkey t = *x;
    *x = *y;
    *y = t;
}

static void sift_down(sh_strkey *a, size_t n, size_t i) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && key_lt(&a[c], &a[c + 1])) c++;
        if (!key_lt(&a[i], &a[c])) return;
        key_swap(&a[i], &a[c]);
        i = c;
    }
}

void sh_strkeys_sort_depth(sh_strkey *a, size_t n, unsigned depth) {
    while (n > 16) {
        if (depth == 0) {
            for (size_t i = n / 2; i-- > 0;) sift_down(a, n, i);
            for (size_t i = n - 1; i > 0; i--) {
                key_swap(&a[0], &a[i]);
                sift_down(a, i, 0);
            }
            return;
        }
        depth--;
        size_t m = n / 2;
        if (key_lt(&a[m], &a[0])) key_swap(&a[m], &a[0]);
        if (key_lt(&a[n - 1], &a[m])) {
            key_swap(&a[n - 1], &a[m]);
            if (key_lt(&a[m], &a[0])) key_swap(&a[m], &a[0]);
        }
        /* a[0] <= pivot <= a[n - 1], and neither end is swapped below:
         * both scans stop inside the range */
        const sh_strkey piv = a[m];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (key_lt(&a[++i], &piv)) {}
            while (key_lt(&piv, &a[--j])) {}
            if (i >= j) break;
            key_swap(&a[i], &a[j]);
        }
        /* [0, i) <= pivot <= [i, n), neither empty: the smaller side by
         * recursion, the larger in this loop (a stack of log2 n frames) */
        if (i < n - i) {
            sh_strkeys_sort_depth(a, i, depth);
            a += i;
            n -= i;
        } else {
            sh_strkeys_sort_depth(a + i, n - i, depth);
            n = i;
        }
    }
    for (size_t i = 1; i < n; i++) {
        sh_strkey k = a[i];
        size_t j = i;
        for (; j > 0 && key_lt(&k, &a[j - 1]); j--) a[j] = a[j - 1];
        a[j] = k;
    }
}

void sh_strkeys_sort(sh_strkey *a, size_t n) {
    unsigned depth = 0;
    for (size_t x = n; x > 1; x >>= 1) depth += 2;
    sh_strkeys_sort_depth(a, n, depth);
}
