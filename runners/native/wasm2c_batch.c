/* wcr's wasm2c batch harness: many resume modules (each translated with its own `wasm2c -n` prefix)
 * in one binary, run one after another from the index given as argv[1].  runners/native/wasm2c.py fills
 * in the @...@ parts.  Output as in wasm2c_harness.c, each module framed by `B <i>` and `E <i>` lines
 * (flushed, so a module that hangs or crashes is identified and the rest re-run after it).  Every
 * module gets a fresh spectest host (memory, table, globals). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm-rt-impl.h"
@INCLUDES@

struct w2c_spectest {
  wasm_rt_memory_t mem;
  wasm_rt_funcref_table_t table;
  u32 gi32;
  u64 gi64;
  f32 gf32;
  f64 gf64;
};

static u32 b32(f32 x) { u32 r; memcpy(&r, &x, 4); return r; }
static u64 b64(f64 x) { u64 r; memcpy(&r, &x, 8); return r; }
@V128@
static int fnull(wasm_rt_funcref_t r) { return r.func == NULL; }
static int enull(wasm_rt_externref_t r) { return r == NULL; }

void w2c_spectest_print(struct w2c_spectest* s) { (void)s; printf("P print\n"); }
void w2c_spectest_print_i32(struct w2c_spectest* s, u32 a) { (void)s; printf("P print_i32 %" PRIu32 "\n", a); }
void w2c_spectest_print_i64(struct w2c_spectest* s, u64 a) { (void)s; printf("P print_i64 %" PRIu64 "\n", a); }
void w2c_spectest_print_f32(struct w2c_spectest* s, f32 a) { (void)s; printf("P print_f32 %" PRIu32 "\n", b32(a)); }
void w2c_spectest_print_f64(struct w2c_spectest* s, f64 a) { (void)s; printf("P print_f64 %" PRIu64 "\n", b64(a)); }
void w2c_spectest_print_i32_f32(struct w2c_spectest* s, u32 a, f32 b) {
  (void)s; printf("P print_i32_f32 %" PRIu32 " %" PRIu32 "\n", a, b32(b));
}
void w2c_spectest_print_f64_f64(struct w2c_spectest* s, f64 a, f64 b) {
  (void)s; printf("P print_f64_f64 %" PRIu64 " %" PRIu64 "\n", b64(a), b64(b));
}
wasm_rt_memory_t* w2c_spectest_memory(struct w2c_spectest* s) { return &s->mem; }
wasm_rt_funcref_table_t* w2c_spectest_table(struct w2c_spectest* s) { return &s->table; }
u32* w2c_spectest_global_i32(struct w2c_spectest* s) { return &s->gi32; }
u64* w2c_spectest_global_i64(struct w2c_spectest* s) { return &s->gi64; }
f32* w2c_spectest_global_f32(struct w2c_spectest* s) { return &s->gf32; }
f64* w2c_spectest_global_f64(struct w2c_spectest* s) { return &s->gf64; }

static void dump_memory(int idx, wasm_rt_memory_t* m) {
  printf("M %d %" PRIu64 "\n", idx, m->pages);
  for (uint64_t off = 0; off < m->size; off += 64) {
    int nz = 0;
    for (int i = 0; i < 64; i++) nz |= m->data[off + i];
    if (!nz) continue;
    printf("m %d %" PRIu64 " ", idx, off);
    for (int i = 0; i < 64; i++) printf("%02x", m->data[off + i]);
    printf("\n");
  }
}

static struct w2c_spectest host;
static volatile int phase = 0;

static void host_init(void) {
  memset(&host, 0, sizeof host);
  wasm_rt_allocate_memory(&host.mem, 1, 2, false, WASM_DEFAULT_PAGE_SIZE);
  wasm_rt_allocate_funcref_table(&host.table, 10, 20);
  host.gi32 = 666;
  host.gi64 = 666;
  u32 f32bits = 0x4426a666u;
  u64 f64bits = 0x4084d4cccccccccdull;
  memcpy(&host.gf32, &f32bits, 4);
  memcpy(&host.gf64, &f64bits, 8);
}

static void host_free(void) {
  wasm_rt_free_memory(&host.mem);
  wasm_rt_free_funcref_table(&host.table);
}

@RUNNERS@

static void (*const runners[])(void) = {@TABLE@};

int main(int argc, char** argv) {
  int start = argc > 1 ? atoi(argv[1]) : 0;
  wasm_rt_init();
  for (int i = start; i < @COUNT@; i++) {
    printf("B %d\n", i);
    fflush(stdout);
    runners[i]();
    printf("E %d\n", i);
    fflush(stdout);
  }
  return 0;
}
