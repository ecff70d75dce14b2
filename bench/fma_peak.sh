#!/usr/bin/env bash
# What a loop of fused multiply-adds reaches on this CPU, per core and with one process per core
# at once: the peak that issue 31's "share of the FMA peak" is taken against. Twelve independent
# 8-lane (AVX2) accumulators, so neither the FMA latency nor memory limits the loop.
#
# Usage: bench/fma_peak.sh   (needs a C compiler and an x86-64 CPU with AVX2 and FMA)
set -euo pipefail
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/fma.c" <<'CEOF'
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
int main(void) {
    __m256 acc[12];
    const __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    const long rounds = 400000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < rounds; k++)
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    float sum = 0, lanes[8];
    for (int i = 0; i < 12; i++) { _mm256_storeu_ps(lanes, acc[i]); sum += lanes[0]; }
    /* The sum is printed so that the loop is not optimised away. */
    printf("%.1f GFLOP/s (checksum %g)\n", rounds * 12.0 * 8 * 2 / seconds / 1e9, sum);
    return 0;
}
CEOF
"${CC:-cc}" -O3 -funroll-all-loops -mavx2 -mfma "$T/fma.c" -o "$T/fma"
echo "one core:"
"$T/fma"
echo "every core at once ($(nproc) processes; the peak is their sum):"
for _ in $(seq "$(nproc)"); do "$T/fma" & done
wait
