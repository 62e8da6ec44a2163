/* wcr's wasm2c harness: many resume modules (each translated with its own `wasm2c -n` prefix) in one
 * binary, run one after another from the index given as argv[1].  runners/native/wasm2c.py fills in the
 * @...@ parts, among them the spectest host (@SPECTEST@), generated from vm/runtime/spectest.py.  Each
 * module's output is framed by `B <i>` and `E <i>` lines (flushed, so a module that hangs or crashes is
 * identified and the rest re-run after it); in between, one line per event on stdout (floats as bit
 * patterns, via memcpy, so NaN payloads survive):
 *   P <print name> <arg bits>...      a spectest print, in call order
 *   R <bits>...                       results of resume (v128: two u64 halves, low first; refs: 1 = null)
 *   T <code> <message>                a trap (code: wasm_rt_trap_t)
 *   G <index> <bits>...               an exported global of the manifest
 *   M <index> <pages>                 an exported memory of the manifest; then its non-zero 64-byte
 *   m <index> <offset> <hex>          chunks
 *   t <index> <0/1 per element>       an exported table (1 = null)
 * Every module gets a fresh spectest host (host_init/host_free). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm-rt-impl.h"
@INCLUDES@

static u32 b32(f32 x) { u32 r; memcpy(&r, &x, 4); return r; }
static u64 b64(f64 x) { u64 r; memcpy(&r, &x, 8); return r; }
@V128@
static int fnull(wasm_rt_funcref_t r) { return r.func == NULL; }
static int enull(wasm_rt_externref_t r) { return r == NULL; }

@SPECTEST@

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

static volatile int phase = 0;

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
