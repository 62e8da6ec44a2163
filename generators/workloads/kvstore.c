/* A key-value store with an append-only log file in the sandbox: appends PUT/DEL records, closes the
 * file, reopens it and replays the log into a table, then prints lookups.  WASI state on the way:
 * an open file with a moving offset, a file that outlives the run (its digest is compared). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 64
#define NOPS 600

static char keys[NKEYS][16];
static char vals[NKEYS][32];
static int present[NKEYS];

static unsigned lcg(unsigned *s) { *s = *s * 1103515245u + 12345u; return (*s >> 16) & 0x7fff; }

static int slot(const char *k) {
    for (int i = 0; i < NKEYS; i++) if (present[i] >= 0 && strcmp(keys[i], k) == 0) return i;
    return -1;
}

static void apply(const char *op, const char *k, const char *v) {
    int i = slot(k);
    if (i < 0) {
        for (i = 0; i < NKEYS && present[i] >= 0; i++) {}
        if (i == NKEYS) return;
        strcpy(keys[i], k);
    }
    if (strcmp(op, "PUT") == 0) { strcpy(vals[i], v); present[i] = 1; }
    else present[i] = 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/data/kv.log";
    unsigned seed = 42;
    FILE *f = fopen(path, "a");
    if (!f) { perror(path); return 1; }
    for (int n = 0; n < NOPS; n++) {
        unsigned r = lcg(&seed);
        if (r % 5 == 0) fprintf(f, "DEL k%u -\n", lcg(&seed) % 40);
        else fprintf(f, "PUT k%u v%u.%d\n", lcg(&seed) % 40, lcg(&seed), n);
    }
    fclose(f);
    for (int i = 0; i < NKEYS; i++) present[i] = -1;
    f = fopen(path, "r");
    if (!f) { perror(path); return 1; }
    char op[8], k[16], v[32];
    long records = 0;
    while (fscanf(f, "%7s %15s %31s", op, k, v) == 3) { apply(op, k, v); records++; }
    long size = ftell(f);
    fclose(f);
    printf("records=%ld bytes=%ld\n", records, size);
    int live = 0;
    for (int i = 0; i < NKEYS; i++) live += present[i] == 1;
    printf("live=%d\n", live);
    for (unsigned q = 0; q < 40; q += 3) {
        char key[16];
        snprintf(key, sizeof key, "k%u", q);
        int i = slot(key);
        printf("%s=%s\n", key, i >= 0 && present[i] == 1 ? vals[i] : "(none)");
    }
    return 0;
}
