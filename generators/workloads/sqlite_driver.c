/* The SQLite workload: a scripted session on a database file in the sandbox (create, insert N rows in
 * one transaction, create an index, aggregate queries, update, query again), every result printed.
 * Built with the amalgamation of a pinned better-sqlite3 release (spec_tests/sqlite_src.py). */
#include <stdio.h>
#include <stdlib.h>
#include "sqlite3.h"

static int print_row(void *tag, int n, char **vals, char **names) {
    printf("%s:", (const char *)tag);
    for (int i = 0; i < n; i++) printf(" %s=%s", names[i], vals[i] ? vals[i] : "NULL");
    printf("\n");
    return 0;
}

static int exec(sqlite3 *db, const char *tag, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, print_row, (void *)tag, &err) != SQLITE_OK) {
        printf("error in %s: %s\n", tag, err ? err : "?");
        sqlite3_free(err);
        return 1;
    }
    return 0;
}

static int insert_rows(sqlite3 *db, int n) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO items(name, category, price, qty) VALUES (?, ?, ?, ?)", -1,
                           &st, NULL) != SQLITE_OK) return 1;
    unsigned seed = 7;
    for (int i = 0; i < n; i++) {
        char name[32];
        seed = seed * 1103515245u + 12345u;
        snprintf(name, sizeof name, "item-%05d-%u", i, (seed >> 16) % 1000);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, (int)((seed >> 8) % 12));
        sqlite3_bind_double(st, 3, (double)((seed >> 4) % 10000) / 100.0);
        sqlite3_bind_int(st, 4, i % 17);
        if (sqlite3_step(st) != SQLITE_DONE) return 1;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/data/test.db";
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) { printf("cannot open %s\n", path); return 1; }
    printf("sqlite %s\n", sqlite3_libversion());
    int bad = exec(db, "pragma", "PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;");
    bad |= exec(db, "create", "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, category INTEGER,"
                              " price REAL, qty INTEGER);");
    bad |= exec(db, "begin", "BEGIN;");
    bad |= insert_rows(db, n);
    bad |= exec(db, "commit", "COMMIT;");
    bad |= exec(db, "index", "CREATE INDEX items_cat ON items(category, price);");
    bad |= exec(db, "count", "SELECT count(*) AS n, printf('%.2f', sum(price)) AS total FROM items;");
    bad |= exec(db, "bycat", "SELECT category, count(*) AS n, printf('%.2f', avg(price)) AS avg,"
                             " max(qty) AS maxq FROM items GROUP BY category ORDER BY category LIMIT 4;");
    bad |= exec(db, "update", "UPDATE items SET price = price * 1.1, qty = qty + 1 WHERE category = 3;");
    bad |= exec(db, "delete", "DELETE FROM items WHERE qty = 0 AND category > 8;");
    bad |= exec(db, "after", "SELECT count(*) AS n, printf('%.2f', sum(price)) AS total, sum(qty) AS q"
                             " FROM items;");
    bad |= exec(db, "top", "SELECT name, printf('%.2f', price) AS price FROM items WHERE category = 3"
                           " ORDER BY price DESC, id LIMIT 3;");
    sqlite3_close(db);
    return bad;
}
