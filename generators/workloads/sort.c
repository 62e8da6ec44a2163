/* Merge sort of a seeded xorshift array (n from argv[1], default 20000): prints whether it is sorted
 * and a position-weighted checksum.  Recursion, a heap buffer, i32 arithmetic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint32_t state = 2463534242u;
static uint32_t xorshift(void) { state ^= state << 13; state ^= state >> 17; state ^= state << 5; return state; }

static void merge_sort(uint32_t *a, uint32_t *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(a, tmp, h);
    merge_sort(a + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    for (k = 0; k < n; k++) a[k] = tmp[k];
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 20000;
    uint32_t *a = malloc(n * sizeof *a), *tmp = malloc(n * sizeof *tmp);
    if (!a || !tmp) { fputs("out of memory\n", stderr); return 1; }
    for (size_t i = 0; i < n; i++) a[i] = xorshift() % 1000000u;
    merge_sort(a, tmp, n);
    int sorted = 1;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && a[i - 1] > a[i]) sorted = 0;
        sum = sum * 31 + a[i] * (uint64_t)(i + 1);
    }
    printf("n=%zu sorted=%d min=%u max=%u median=%u checksum=%llu\n", n, sorted, a[0], a[n - 1], a[n / 2],
           (unsigned long long)sum);
    free(a); free(tmp);
    return sorted ? 0 : 1;
}
