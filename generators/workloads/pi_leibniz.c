/* pi by the Leibniz series, n terms (argv[1], default 1,000,000): the n = 1e6 case.  One tight
 * f64 loop: the workload that measures raw interpreter speed. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    double sum = 0.0, sign = 1.0;
    for (long k = 0; k < n; k++) {
        sum += sign / (2.0 * (double)k + 1.0);
        sign = -sign;
    }
    printf("n=%ld pi=%.9f\n", n, 4.0 * sum);
    return 0;
}
