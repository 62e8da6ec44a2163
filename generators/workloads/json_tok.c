/* A JSON tokenizer: tokenizes a document (argv[1] names a file in the sandbox; without it an embedded
 * document repeated R times) and prints token counts by kind plus a checksum of string/number text.
 * Byte-wise branching code: the shape generated tests rarely produce. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *DOC =
    "{\"name\": \"wcr\", \"version\": [0, 1, 0], \"ok\": true, \"none\": null,\n"
    " \"items\": [{\"id\": 1, \"score\": -12.5e3, \"tags\": [\"a\", \"b\\\"c\", \"\\u00e9\"]},\n"
    "           {\"id\": 2, \"score\": 3.25, \"tags\": []}, {\"nested\": {\"deep\": [[[false]]]}}],\n"
    " \"text\": \"checkpoint/restore of WebAssembly execution\"}\n";

enum { T_LBRACE, T_RBRACE, T_LBRACK, T_RBRACK, T_COLON, T_COMMA, T_STRING, T_NUMBER, T_TRUE, T_FALSE,
       T_NULL, T_ERROR, T_KINDS };
static const char *NAMES[T_KINDS] = {"{", "}", "[", "]", ":", ",", "string", "number", "true", "false",
                                     "null", "error"};
static long counts[T_KINDS];
static unsigned long checksum = 5381;

static void mix(const char *s, size_t n) { for (size_t i = 0; i < n; i++) checksum = checksum * 33 + (unsigned char)s[i]; }

static size_t lex(const char *s, size_t i, size_t n) {
    char c = s[i];
    switch (c) {
    case '{': counts[T_LBRACE]++; return i + 1;
    case '}': counts[T_RBRACE]++; return i + 1;
    case '[': counts[T_LBRACK]++; return i + 1;
    case ']': counts[T_RBRACK]++; return i + 1;
    case ':': counts[T_COLON]++; return i + 1;
    case ',': counts[T_COMMA]++; return i + 1;
    case '"': {
        size_t j = i + 1;
        while (j < n && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
        mix(s + i, j - i);
        counts[T_STRING]++;
        return j + 1;
    }
    default: break;
    }
    if (c == '-' || isdigit((unsigned char)c)) {
        size_t j = i + 1;
        while (j < n && (isdigit((unsigned char)s[j]) || strchr(".eE+-", s[j]))) j++;
        mix(s + i, j - i);
        counts[T_NUMBER]++;
        return j;
    }
    if (strncmp(s + i, "true", 4) == 0) { counts[T_TRUE]++; return i + 4; }
    if (strncmp(s + i, "false", 5) == 0) { counts[T_FALSE]++; return i + 5; }
    if (strncmp(s + i, "null", 4) == 0) { counts[T_NULL]++; return i + 4; }
    counts[T_ERROR]++;
    return i + 1;
}

static void tokenize(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (isspace((unsigned char)s[i])) i++;
        else i = lex(s, i, n);
    }
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *n = len;
    return buf;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-r") != 0) {
        size_t n;
        char *buf = read_file(argv[1], &n);
        if (!buf) { perror(argv[1]); return 1; }
        tokenize(buf, n);
        free(buf);
    } else {
        int reps = argc > 2 ? atoi(argv[2]) : 60;
        for (int r = 0; r < reps; r++) tokenize(DOC, strlen(DOC));
    }
    for (int k = 0; k < T_KINDS; k++) printf("%-7s %ld\n", NAMES[k], counts[k]);
    printf("checksum %lu\n", checksum);
    return counts[T_ERROR] ? 3 : 0;
}
