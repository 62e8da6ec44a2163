"""Hypothesis strategies for *valid, terminating* Wasm modules, built directly as :class:`vm.module.Module`.

Why a generator of our own next to wasm-smith (:mod:`generators.smith`): every choice here is a Hypothesis
draw, so when a checkpoint/restore or differential property fails, Hypothesis shrinks the *program*
(fewer functions, fewer statements, constants instead of expressions) and the minimal case still
validates.  wasm-smith shrinks only its seed bytes.

How programs are built
----------------------
Function bodies are generated *type-directed*: ``_values(T)`` emits code that pushes exactly the types
``T`` on the operand stack, ``_stmt()`` emits stack-neutral code.  Every generator is a choice among
alternatives ordered simplest first (constants before expressions, drops before stores ...), drawn with
``st.integers(0, n)``, so that shrinking the draws towards 0 simplifies the program.  Each function has an
instruction budget; once it is spent only leaves (constants) are chosen.

Termination is structural, not hoped for:

* global 0 is the mutable i32 *fuel* (exported as ``fuel``).  Every function entry and every loop head
  runs ``if fuel == 0 then <exit> end; fuel -= 1``; random code never writes it.  ``<exit>`` is drawn per
  function: ``unreachable`` (a trap on purpose) or ``return`` of default values.  Since a backward jump
  can only target a loop head and a new frame only starts at a function entry, every piece of
  straight-line code is re-entered at most ``fuel + depth`` times, which bounds the instruction count and
  the call depth (by ``fuel + 1``).
* counted loops additionally use a dedicated counter local that random code never writes.

NaN determinism
---------------
Per the spec, a NaN produced by float *arithmetic* has a nondeterministic payload and sign, so engines
may legally differ as soon as such bits are observed (``reinterpret``, stores, ``copysign``...).  With the
``canon_nans`` feature (default) the output of every arithmetic float op is canonicalised in the
generated code (``x == x ? x : +nan``), like ``wasm-smith --canonicalize-nans``; then all float values in
the program are deterministic bit patterns (payload-carrying NaN constants, loads and reinterprets stay
exact), and results can be compared bit for bit.  :attr:`GeneratedCase.deterministic` says whether that
holds.

Exports: ``run`` (the entry; function 0 of the defined functions), ``f<i>`` for each defined function,
``run_bits`` (a wrapper around ``run`` whose float params/results are passed as i32/i64 bit patterns,
for hosts that would quiet f32 NaN payloads, e.g. wasmtime-py), ``fuel``, ``g<i>`` for the globals drawn
as exported (the others stay private, so a restore that writes back only exported globals fails), ``mem``
(memory 0) and ``tab`` (the call_indirect table) when present.  With the ``host`` feature the module
imports ``spectest.print_i32/print_i64/print_f32/print_f64`` (functions 0-3) and may import
``spectest.memory`` (then memory 0) and ``spectest.table``.

Store state and the control shapes C/R converters get wrong (a second memory and table, passive segments,
table writes over segment slots, deep recursion, a ``br_table`` whose default leaves a loop, an ``if``
left by its false edge) live in :mod:`generators.stateops`; ``boost=`` makes the ones a campaign has
not covered yet likelier (:data:`generators.stateops.BOOSTS`, names from :mod:`vm.snapshot.coverage`).
v128 values and SIMD instructions (feature ``simd``, off by default: ``wcr fuzz --simd``) live in
:mod:`generators.simd`; the entry ``run`` never takes or returns a v128 (hosts such as wasmtime-py cannot
pass one) and v128 globals stay unexported for the same reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from hypothesis import strategies as st

from vm.binary import encode_module
from vm.module import (
    Data,
    Elem,
    Export,
    Func,
    Global,
    Import,
    ImportDesc,
    Instr,
    MemArg,
    Memory,
    Module,
    Table,
)
from vm.runtime.spectest import PRINTS
from vm.types import (
    F32,
    F64,
    I32,
    I64,
    V128,
    FuncType,
    GlobalType,
    RefType,
    SubType,
    ValType,
)

from .exn import ExnOps
from .gc import GC_REC_SIZES, GC_TYPES, NODE, GcOps
from .simd import V128_EDGES, V128_LOADS, V128_STORES, SimdOps
from .stateops import BOOSTS, StateOps, _ints, _Label
from .wasi import WASI_CONFIG, WasiOps

__all__ = [
    "ALL_FEATURES", "DEFAULT_FEATURES", "GeneratedCase", "Size", "modules", "cases", "args_for", "value_of",
    "bits_type", "count_instructions",
]

#: Everything the generator can be asked to use.  ``features=`` takes a subset.
ALL_FEATURES: FrozenSet[str] = frozenset({
    "memory",       # a memory, loads/stores, memory.size/grow, data segments
    "bulk_memory",  # memory.fill / memory.copy
    "tables",       # a funcref table with an elem segment, call_indirect, table.get/size
    "floats",       # f32/f64 values and ops
    "multi_value",  # type-indexed block types with params/results, multi-result functions
    "calls",        # direct calls between functions (recursion bounded by fuel)
    "loops",        # loop blocks (fuel-checked), counted loops
    "branches",     # br / br_if / br_table / return
    "traps",        # deliberate traps: unreachable, div/rem, trapping truncations, OOB accesses
    "host",         # spectest.print_* imports called as statements
    "sign_ext",     # i32.extend8_s ...
    "sat_trunc",    # *.trunc_sat_*
    "canon_nans",   # canonicalise arithmetic NaNs (see module docstring)
    "multi_memory",  # a second memory (Wasm 3.0; targets without it report not-applicable)
    "simd",         # v128 values and SIMD instructions (generators.simd); off by default: a switch
    "gc",           # structs, arrays, i31 and casts (generators.gc); off by default: a switch
    "exceptions",   # tags, throw, try_table, throw_ref, exnref (generators.exn); off by default: a switch
    "wasi",         # imports wasi_snapshot_preview1: files, stdout, errnos (generators.wasi); off by default
})
#: the default set: everything but the switches ``simd``, ``gc``, ``exceptions`` and ``wasi`` (which a campaign
#: turns on with ``wcr fuzz --simd`` / ``--gc`` / ``--exceptions`` / ``--wasi``)
DEFAULT_FEATURES: FrozenSet[str] = ALL_FEATURES - {"simd", "gc", "exceptions", "wasi"}

FUEL_GLOBAL = 0
CANON_NAN = {F32: 0x7FC00000, F64: 0x7FF8000000000000}
_MASK = {I32: (1 << 32) - 1, I64: (1 << 64) - 1, F32: (1 << 32) - 1, F64: (1 << 64) - 1, V128: (1 << 128) - 1}

# -- edge values (runtime representation: unsigned ints / float bit patterns) -------------------------
EDGE_VALUES: Dict[str, Tuple[int, ...]] = {
    I32: (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 2, 31, 32, 0xFFFF, 0x10000, 0xFFFFFFFE),
    I64: (0, 1, (1 << 64) - 1, (1 << 63) - 1, 1 << 63, 2, 63, 64, 0xFFFFFFFF, 1 << 32, (1 << 64) - 2),
    F32: (
        0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000,  # ±0, ±1, ±inf
        0x7FC00000, 0xFFC00000, 0x7FA00001, 0xFFE12345, 0x7F800001,  # NaNs (quiet, signalling, payloads)
        0x7F7FFFFF, 0x00000001, 0x00800000, 0x80000001,  # max, min subnormal, min normal
        0x4F000000, 0xCF000000, 0x4F800000, 0x5F000000, 0xDF000000,  # 2^31, -2^31, 2^32, ±2^63
        0x3FC00000, 0xBF000000, 0x40490FDB,  # 1.5, -0.5, pi
    ),
    F64: (
        0, 1 << 63, 0x3FF0000000000000, 0xBFF0000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
        0x7FF8000000000000, 0xFFF8000000000000, 0x7FF4000000000001, 0xFFF80000DEADBEEF,
        0x7FF0000000000001,
        0x7FEFFFFFFFFFFFFF, 0x0000000000000001, 0x0010000000000000, 0x8000000000000001,
        0x41E0000000000000, 0xC1E0000000000000, 0x41F0000000000000, 0x43E0000000000000,
        0xC3E0000000000000, 0x3FF8000000000000, 0xBFE0000000000000, 0x400921FB54442D18,
        0x41DFFFFFFFC00000,  # 2^31 - 1
    ),
    V128: V128_EDGES,
}


_BOOLS = st.booleans()


_VALUE_CACHE: Dict[ValType, st.SearchStrategy[int]] = {}


def value_of(t: ValType) -> st.SearchStrategy[int]:
    """Values of numeric type ``t`` in the runtime representation, edge values first (so they are what
    shrinking converges to), then arbitrary bit patterns."""
    s = _VALUE_CACHE.get(t)
    if s is None:
        bits = {I32: 32, F32: 32, V128: 128}.get(t, 64)
        s = _VALUE_CACHE[t] = st.one_of(st.sampled_from(EDGE_VALUES[t]), st.integers(0, (1 << bits) - 1))
    return s


def args_for(ft: FuncType) -> st.SearchStrategy[List[Any]]:
    """An argument list for a function of type ``ft`` (reference params get ``None``, i.e. null)."""
    parts = [value_of(t) if isinstance(t, str) and t in EDGE_VALUES else st.none() for t in ft.params]
    return st.tuples(*parts).map(list)


def bits_type(t: ValType) -> ValType:
    """The integer type that carries ``t``'s bits in ``run_bits`` (f32→i32, f64→i64)."""
    return {F32: I32, F64: I64}.get(t, t) if isinstance(t, str) else t


# -- instruction tables --------------------------------------------------------------------------------
_INT_BIN = ("add", "sub", "mul", "and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr")
_INT_DIV = ("div_s", "div_u", "rem_s", "rem_u")
_INT_UN = ("clz", "ctz", "popcnt")
_INT_REL = ("eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u")
_FLT_BIN_ARITH = ("add", "sub", "mul", "div", "min", "max")
_FLT_UN_ARITH = ("ceil", "floor", "trunc", "nearest", "sqrt")
_FLT_UN_BITS = ("abs", "neg")
_FLT_REL = ("eq", "ne", "lt", "gt", "le", "ge")
_SIGN_EXT = {I32: ("extend8_s", "extend16_s"), I64: ("extend8_s", "extend16_s", "extend32_s")}
_NATURAL = {I32: 2, I64: 3, F32: 2, F64: 3}
_LOADS = {
    I32: (("i32.load", 2), ("i32.load8_s", 0), ("i32.load8_u", 0), ("i32.load16_s", 1), ("i32.load16_u", 1)),
    I64: (("i64.load", 3), ("i64.load8_s", 0), ("i64.load8_u", 0), ("i64.load16_s", 1),
          ("i64.load16_u", 1), ("i64.load32_s", 2), ("i64.load32_u", 2)),
    F32: (("f32.load", 2),),
    F64: (("f64.load", 3),),
    V128: V128_LOADS,
}
_STORES = {
    I32: (("i32.store", 2), ("i32.store8", 0), ("i32.store16", 1)),
    I64: (("i64.store", 3), ("i64.store8", 0), ("i64.store16", 1), ("i64.store32", 2)),
    F32: (("f32.store", 2),),
    F64: (("f64.store", 3),),
    V128: V128_STORES,
}
#: Relative weights of the alternatives in ``value``/``stmt`` (the order of the options, not the weights,
#: decides what shrinking prefers).
_WEIGHTS: Dict[str, int] = {
    # values
    "const": 8, "local.get": 8, "global.get": 3, "unop": 6, "binop": 10, "compare": 6, "convert": 6,
    "load": 6, "memory.size": 2, "memory.grow": 2, "local.tee": 3, "select": 3, "block": 6, "call": 6,
    "table": 2, "call_indirect": 2, "unreachable": 1, "lane": 3,
    # statements ("block", "call", "call_indirect" shared with values)
    "drop": 4, "local.set": 6, "global.set": 4, "store": 6, "bulk": 2, "print": 3, "counted_loop": 4,
    "br_if": 3, "br": 1, "br_table": 1, "return": 1,
    # store state and control shapes (generators.stateops)
    "table_write": 3, "segment": 2, "mem2": 3, "br_table_loop": 2, "if_skip": 2,
    # GC and exceptions (generators.gc, generators.exn): "gc" is a value and a statement
    "gc": 6, "try": 3, "exn": 4,
    # WASI calls (generators.wasi): a value (the errno) and a statement
    "wasi": 10,
}
# the one-argument prints of the spectest declaration, by argument type
_PRINTS = tuple((params[0], name) for name, params in PRINTS.items() if len(params) == 1)


def _conversions(t: ValType, feats: FrozenSet[str]) -> List[Tuple[str, ValType, bool]]:
    """``(op, operand type, arithmetic-NaN?)`` for the conversions producing ``t``."""
    out: List[Tuple[str, ValType, bool]] = []
    floats = "floats" in feats
    if t == I32:
        out.append(("i32.wrap_i64", I64, False))
        if floats:
            out.append(("i32.reinterpret_f32", F32, False))
            for s in ("s", "u"):
                if "sat_trunc" in feats:
                    out += [(f"i32.trunc_sat_f32_{s}", F32, False), (f"i32.trunc_sat_f64_{s}", F64, False)]
                if "traps" in feats:
                    out += [(f"i32.trunc_f32_{s}", F32, False), (f"i32.trunc_f64_{s}", F64, False)]
    elif t == I64:
        out += [("i64.extend_i32_s", I32, False), ("i64.extend_i32_u", I32, False)]
        if floats:
            out.append(("i64.reinterpret_f64", F64, False))
            for s in ("s", "u"):
                if "sat_trunc" in feats:
                    out += [(f"i64.trunc_sat_f32_{s}", F32, False), (f"i64.trunc_sat_f64_{s}", F64, False)]
                if "traps" in feats:
                    out += [(f"i64.trunc_f32_{s}", F32, False), (f"i64.trunc_f64_{s}", F64, False)]
    elif t == F32:
        out += [("f32.reinterpret_i32", I32, False), ("f32.demote_f64", F64, True)]
        out += [(f"f32.convert_{a}_{s}", a, False) for a in (I32, I64) for s in ("s", "u")]
    elif t == F64:
        out += [("f64.reinterpret_i64", I64, False), ("f64.promote_f32", F32, True)]
        out += [(f"f64.convert_{a}_{s}", a, False) for a in (I32, I64) for s in ("s", "u")]
    return out


@dataclass
class GeneratedCase:
    """One test case: a module and one call into it.

    ``args`` are in the VM's runtime representation (unsigned ints, float bit patterns) for ``export``;
    ``bits_export`` takes the same values with floats passed as integer bit patterns (``bits_args``).
    """

    module: Module
    wasm: bytes
    export: str
    args: List[Any]
    functype: FuncType
    bits_export: Optional[str] = "run_bits"
    deterministic: bool = True  # all float bits observable by the host are deterministic
    features: FrozenSet[str] = field(default_factory=frozenset)
    #: how the program is started when it imports WASI (:data:`generators.wasi.WASI_CONFIG`), else None
    wasi: Optional[Dict[str, Any]] = None

    @property
    def bits_args(self) -> List[Any]:
        return list(self.args)

    def instruction_count(self) -> int:
        """Static size: instructions in all function bodies (what shrinking should keep small)."""
        return count_instructions(self.module)


def count_instructions(m: Module) -> int:
    return sum(len(f.body) for f in m.funcs)


# -------------------------------------------------------------------------------------------------------
# The generator
# -------------------------------------------------------------------------------------------------------
class _FuncCtx:
    def __init__(self, ft: FuncType, budget: int, exit_trap: bool):
        self.ft = ft
        self.local_types: List[ValType] = list(ft.params)
        self.reserved: set = set()  # loop counters: never written by random code
        self.labels: List[_Label] = [_Label("func", tuple(ft.results))]
        self.budget = budget
        self.exit_trap = exit_trap
        self.scratch: Dict[ValType, int] = {}

    def new_local(self, t: ValType, reserved: bool = False) -> int:
        self.local_types.append(t)
        i = len(self.local_types) - 1
        if reserved:
            self.reserved.add(i)
        return i

    def scratch_local(self, t: ValType) -> int:
        if t not in self.scratch:
            self.scratch[t] = self.new_local(t, reserved=True)
        return self.scratch[t]


class _Gen(StateOps, SimdOps, GcOps, ExnOps, WasiOps):
    """One module's generation state; ``draw`` is the Hypothesis draw function of the composite.
    ``boost``: coverage kinds to make likelier (:data:`generators.stateops.BOOSTS`)."""

    MAX_DEPTH = 5  # expression nesting
    MAX_BLOCKS = 3  # block nesting

    def __init__(self, draw: Callable[[st.SearchStrategy], Any], feats: FrozenSet[str], size: Size,
                 boost: FrozenSet[str] = frozenset()):
        self.draw = draw
        self.init_state()
        self.weights = dict(_WEIGHTS)
        knobs: set = set()
        for kind in boost:
            ks, stmts = BOOSTS.get(kind, ((), ()))
            knobs.update(ks)
            for o in stmts:
                self.weights[o] = self.weights.get(o, 1) * 2
        self.boost_knobs = frozenset(knobs)
        self.boost = boost
        self.f = feats
        self.size = size
        self.types: List[FuncType] = []
        self.valtypes: Tuple[ValType, ...] = (I32, I64, F32, F64) if "floats" in feats else (I32, I64)
        if "simd" in feats:
            self.valtypes += (V128,)
        self.imports: List[Import] = []
        self.func_types: List[int] = []  # typeidx per function index (imports first)
        self.print_funcs: Dict[ValType, int] = {}
        self.globals: List[Global] = []  # defined globals (module index = gbase + position)
        self.has_mem = False
        self.mem_pages = 0
        self.table_size = 0
        self.slots: List[Optional[int]] = []  # function index in each table slot (None = null)
        self.ctx: Optional[_FuncCtx] = None
        self.code: List[Instr] = []
        self.depth = 0
        self.blocks = 0

    # -- drawing helpers --------------------------------------------------------------------------
    def choice(self, n: int) -> int:
        return self.draw(_ints(0, n - 1)) if n > 1 else 0

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.choice(len(seq))]

    def pick_w(self, opts: Sequence[str]) -> str:
        """Weighted choice (weights in :data:`_WEIGHTS`) that still shrinks towards ``opts[0]``."""
        ws = [self.weights.get(o, 1) for o in opts]
        k = self.draw(_ints(0, sum(ws) - 1))
        for o, w in zip(opts, ws):
            if k < w:
                return o
            k -= w
        return opts[-1]

    def flag(self) -> bool:
        return self.draw(_BOOLS)

    def type_index(self, ft: FuncType) -> int:
        if ft not in self.types:
            self.types.append(ft)
        return self.types.index(ft)

    def emit(self, op: str, imm: Any = None) -> None:
        self.code.append(Instr(op, imm))
        if self.ctx is not None:
            self.ctx.budget -= 1

    @property
    def exhausted(self) -> bool:
        return self.ctx is None or self.ctx.budget <= 0

    # -- module skeleton ---------------------------------------------------------------------------
    def draw_valtypes(self, lo: int, hi: int) -> Tuple[ValType, ...]:
        n = self.draw(_ints(lo, hi))
        return tuple(self.pick(self.valtypes) for _ in range(n))

    def draw_functype(self) -> FuncType:
        params = self.draw_valtypes(0, 3)
        results = self.draw_valtypes(0, 3 if "multi_value" in self.f else 1)
        return FuncType(params, results)

    def const(self, t: ValType) -> None:
        v = self.draw(value_of(t))
        self.emit(f"{t}.const", v)

    def build(self) -> Module:
        f = self.f
        rec_sizes: List[int] = []
        if "gc" in f:  # the GC types first: function types are added as they are needed
            self.types = list(GC_TYPES)
            rec_sizes = list(GC_REC_SIZES)
        tags = self.exn_tags(RefType(True, NODE) if "gc" in f else None) if "exceptions" in f else []
        if "host" in f:
            for t, name in _PRINTS:
                if t in self.valtypes:
                    ti = self.type_index(FuncType((t,), ()))
                    self.print_funcs[t] = len(self.imports)
                    self.imports.append(Import("spectest", name, ImportDesc("func", ti)))
                    self.func_types.append(ti)
        if "wasi" in f:
            self.wasi_imports()
        nimp = len(self.imports)
        nfuncs = self.draw(_ints(1, self.size.max_funcs))
        self._nuser = nfuncs
        fts = [self.draw_functype() for _ in range(nfuncs)]
        if "calls" in f and self.knob("deep_recursion"):
            # the last function recurses on its first parameter (an i32 depth); run calls it first
            self.rec_depth = self.draw(_ints(0, 12))
            if nfuncs >= 2:
                self.rec_func = nimp + nfuncs - 1
                fts[-1] = FuncType((I32,) + fts[-1].params[1:], fts[-1].results)
        fts[0] = FuncType(*(tuple(I64 if t == V128 else t for t in ts) for ts in (fts[0].params, fts[0].results)))
        for ft in fts:
            self.func_types.append(self.type_index(ft))
        # globals: the fuel first, then a few others
        fuel = self.draw(_ints(0, self.size.max_fuel))
        self.globals.append(Global(GlobalType(I32, True), [Instr("i32.const", fuel), Instr("end")]))
        # other globals: mutable or not, exported or not (a restore that writes back only the exported
        # ones must fail on the others)
        exported = [0]
        for _ in range(self.draw(_ints(0, 3))):
            t = self.pick(self.valtypes)
            v = self.draw(value_of(t))
            self.globals.append(Global(GlobalType(t, self.flag()), [Instr(f"{t}.const", v), Instr("end")]))
            if self.flag() and t != V128:  # wasmtime-py cannot read a v128 global back
                exported.append(len(self.globals) - 1)
        if "host" in f and self.knob("import_global"):
            self.import_global()
        if "gc" in f:
            self.gc_globals(self.gbase)
        if "exceptions" in f:
            self.exn_globals(self.gbase)
        wasi_exports = self.wasi_globals() if "wasi" in f else []
        mems: List[Memory] = []
        datas: List[Data] = []
        if "memory" in f or "wasi" in f:
            self.build_memories(mems, datas)
        tables: List[Table] = []
        elems: List[Elem] = []
        if "tables" in f:
            self.build_tables(nimp, nfuncs, tables, elems)
        if "gc" in f:
            self.gc_table_def(len(self.tabs), tables)
        # bodies (all signatures known first, so any function can call any other, itself included)
        funcs: List[Func] = []
        for ft in fts:
            funcs.append(self.gen_func(ft))
        wrapper_idx = nimp + len(funcs)
        funcs.append(self.gen_bits_wrapper(fts[0], nimp))
        exports = [Export("run", "func", nimp)]
        exports += [Export(f"f{j}", "func", nimp + j) for j in range(nfuncs)]
        exports.append(Export("run_bits", "func", wrapper_idx))
        exports.append(Export("fuel", "global", self.gbase))
        exports += [Export(f"g{i}", "global", self.gbase + i) for i in exported[1:]]
        if self.has_mem:
            exports.append(Export("mem", "memory", 0))
        if "wasi" in f:  # WASI binds the export named "memory"
            exports += [Export("memory", "memory", 0)] + wasi_exports
        if tables:
            exports.append(Export("tab", "table", self.main_table))
        return Module(
            types=[t if isinstance(t, SubType) else SubType(True, (), t) for t in self.types],
            rec_sizes=rec_sizes + [1] * (len(self.types) - sum(rec_sizes)),
            imports=self.imports + self.other_imports,
            funcs=funcs,
            tables=tables,
            memories=mems,
            globals=self.globals,
            tags=tags,
            exports=exports,
            elems=elems,
            datas=datas,
            data_count=len(datas) if self.passive_datas else None,
        )

    def gen_bits_wrapper(self, ft: FuncType, entry: int) -> Func:
        """``run_bits``: ``run`` with float params/results carried as integer bit patterns."""
        bt = FuncType(tuple(bits_type(t) for t in ft.params), tuple(bits_type(t) for t in ft.results))
        self.func_types.append(self.type_index(bt))
        code: List[Instr] = []
        for i, t in enumerate(ft.params):
            code.append(Instr("local.get", i))
            if t == F32:
                code.append(Instr("f32.reinterpret_i32"))
            elif t == F64:
                code.append(Instr("f64.reinterpret_i64"))
        code.append(Instr("call", entry))
        np = len(ft.params)
        locals_ = list(ft.results)
        for j in reversed(range(len(ft.results))):
            code.append(Instr("local.set", np + j))
        for j, t in enumerate(ft.results):
            code.append(Instr("local.get", np + j))
            if t == F32:
                code.append(Instr("i32.reinterpret_f32"))
            elif t == F64:
                code.append(Instr("i64.reinterpret_f64"))
        code.append(Instr("end"))
        return Func(self.type_index(bt), [(1, t) for t in locals_], code)

    # -- functions -----------------------------------------------------------------------------------
    def gen_func(self, ft: FuncType) -> Func:
        budget = self.draw(_ints(0, self.size.max_budget))
        exit_trap = "traps" in self.f and self.choice(4) == 3
        self.ctx = _FuncCtx(ft, budget, exit_trap)
        self.code = []
        self.depth = 0
        self.blocks = 0
        self.fuel_check()
        if "simd" in self.f:
            self.v128_local()
        if "gc" in self.f:
            self.gc_locals()
        if "exceptions" in self.f:
            self.exn_locals()
        fidx = len(self.imports) + len(self.funcs_done)
        if self.rec_func is not None:
            if fidx == self.rec_func:
                self.recursion_prologue(fidx)
            elif fidx == len(self.imports):
                self.recursion_call()
        if "wasi" in self.f:
            if fidx == len(self.imports):
                self.wasi_prologue()
            self.wasi_entry()
        self.block_body((), tuple(ft.results))
        if "wasi" in self.f and fidx == len(self.imports):
            self.wasi_epilogue()  # proc_exit above the results (its type leaves them alone)
        self.code.append(Instr("end"))
        self.funcs_done.append(fidx)
        ctx = self.ctx
        self.ctx = None
        extra = ctx.local_types[len(ft.params):]
        return Func(self.type_index(ft), [(1, t) for t in extra], self.code)

    def fuel_check(self) -> None:
        """``if fuel == 0 then <exit> end; fuel -= 1`` (not counted against the budget)."""
        c = self.code
        fuel = FUEL_GLOBAL + self.gbase
        c += [Instr("global.get", fuel), Instr("i32.eqz"), Instr("if", None)]
        if self.ctx.exit_trap:
            c.append(Instr("unreachable"))
        else:
            for t in self.ctx.ft.results:
                c.append(Instr(f"{t}.const", 0))
            c.append(Instr("return"))
        c += [Instr("end"), Instr("global.get", fuel), Instr("i32.const", 1), Instr("i32.sub"),
              Instr("global.set", fuel)]

    def block_body(self, params: Tuple[ValType, ...], results: Tuple[ValType, ...]) -> None:
        """Code that turns ``params`` (already on the stack) into exactly ``results``."""
        if params == results and self.flag():
            pass_through = True
        else:
            pass_through = False
            for t in reversed(params):
                writable = [i for i, lt in enumerate(self.ctx.local_types)
                            if lt == t and i not in self.ctx.reserved]
                if writable and self.flag():
                    self.emit("local.set", self.pick(writable))
                else:
                    self.emit("drop")
        n = self.draw(_ints(0, 4)) if not self.exhausted else 0
        for _ in range(n):
            self.stmt()
        if not pass_through:
            self.values(results)

    # -- multi-value producers --------------------------------------------------------------------
    def blocktype(self, params: Tuple[ValType, ...], results: Tuple[ValType, ...]) -> Any:
        if not params and not results:
            return None
        if not params and len(results) == 1:
            return results[0]
        return self.type_index(FuncType(params, results))

    def can_block(self) -> bool:
        return self.blocks < self.MAX_BLOCKS and not self.exhausted

    def structured(self, results: Tuple[ValType, ...], kind: Optional[str] = None) -> None:
        """A ``block``/``loop``/``if`` producing ``results`` (params drawn when multi-value is on)."""
        params: Tuple[ValType, ...] = ()
        if "multi_value" in self.f and self.flag():
            params = self.draw_valtypes(1, 2)
        kinds = ["block", "if"] + (["loop"] if "loops" in self.f else [])
        if kind is None:
            kind = self.pick(kinds)
        self.values(params)
        if kind == "if":
            self.value(I32)
        bt = self.blocktype(params, results)
        self.emit(kind, bt)
        self.blocks += 1
        self.ctx.labels.append(_Label(kind, params if kind == "loop" else results))
        if kind == "loop":
            self.fuel_check()
        self.block_body(params, results)
        if kind == "if" and (results != params or self.flag()):
            self.emit("else")
            self.block_body(params, results)
        self.ctx.labels.pop()
        self.blocks -= 1
        self.emit("end")

    def funcs_returning(self, results: Tuple[ValType, ...]) -> List[int]:
        """Callable functions (not the prints, not ``run_bits``) whose results are ``results``."""
        nimp = len(self.imports)
        return [nimp + j for j, ti in enumerate(self.func_types[nimp:nimp + self.nuser])
                if self.types[ti].results == results]

    def labels_with(self, types: Tuple[ValType, ...]) -> List[int]:
        """Relative label indices whose branch types are ``types``."""
        labs = self.ctx.labels
        return [len(labs) - 1 - i for i, lab in enumerate(labs) if lab.types == types]

    def values(self, types: Tuple[ValType, ...]) -> None:
        """Push exactly ``types``."""
        if len(types) == 1:
            self.value(types[0])
            return
        opts = ["each"]
        if not self.exhausted and self.depth < self.MAX_DEPTH:
            if self.can_block() and ("multi_value" in self.f or not types):
                opts.append("block")
            if "calls" in self.f and self.funcs_returning(types):
                opts.append("call")
            if "tables" in self.f and "traps" in self.f and "multi_value" in self.f:
                opts.append("call_indirect")
            if "branches" in self.f and self.labels_with(types):
                opts.append("br_if")
        o = self.pick(opts)
        self.depth += 1
        if o == "each":
            for t in types:
                self.value(t)
        elif o == "block":
            self.structured(types)
        elif o == "call":
            self.call(self.pick(self.funcs_returning(types)))
        elif o == "call_indirect":
            self.call_indirect(types)
        elif o == "br_if":
            lab = self.pick(self.labels_with(types))
            self.values(types)
            self.value(I32)
            self.emit("br_if", lab)
        self.depth -= 1

    def call(self, fidx: int) -> None:
        ft = self.types[self.func_types[fidx]]
        self.values(ft.params)
        self.emit("call", fidx)

    def call_indirect(self, results: Optional[Tuple[ValType, ...]]) -> int:
        """Call through the table; returns the type index used.  Usually a slot holding a function of
        the right type; sometimes (traps on purpose) a null slot, a function of another type, an index
        past the end or an arbitrary expression."""
        good = [(i, self.func_types[f]) for i, f in enumerate(self.slots)
                if f is not None and (results is None or self.types[self.func_types[f]].results == results)]
        k = self.choice(16)
        if good and k < 14:
            slot, ti = self.pick(good)
        else:
            defined = self.func_types[len(self.imports):len(self.imports) + self.nuser]
            cands = [t for t in dict.fromkeys(defined) if results is None or self.types[t].results == results]
            if cands and self.flag():
                ti = self.pick(cands)
            else:
                rs = results if results is not None else self.draw_valtypes(0, 1)
                ti = self.type_index(FuncType(self.draw_valtypes(0, 2), rs))
            slot = self.draw(_ints(0, self.table_size)) if k < 15 else -1
        self.values(self.types[ti].params)
        if slot < 0:
            self.value(I32)
        else:
            self.emit("i32.const", slot)
        self.emit("call_indirect", (ti, self.main_table))
        return ti

    # -- single values ---------------------------------------------------------------------------
    def value(self, t: ValType) -> None:
        """Push one value of type ``t``."""
        if isinstance(t, RefType):
            self.ref_value(t)
            return
        ctx = self.ctx
        if self.exhausted or self.depth >= self.MAX_DEPTH:
            self.const(t)
            return
        opts = ["const"]
        locs = [i for i, lt in enumerate(ctx.local_types) if lt == t]
        if locs:
            opts.append("local.get")
        globs = [i for i, gt in enumerate(self.global_types()) if gt.type == t]
        if globs:
            opts.append("global.get")
        opts += ["unop", "binop"]
        if t == I32:
            opts.append("compare")
        opts.append("convert")
        if "simd" in self.f and t != V128:
            opts.append("lane")
        if self.has_mem:
            opts.append("load")
            if t == I32:
                opts.append("memory.size")
                opts.append("memory.grow")
        if [i for i in locs if i not in ctx.reserved]:
            opts.append("local.tee")
        opts.append("select")
        if self.can_block():
            opts.append("block")
        if "calls" in self.f and self.funcs_returning((t,)):
            opts.append("call")
        if "tables" in self.f:
            if t == I32:
                opts.append("table")
            if "traps" in self.f:
                opts.append("call_indirect")
        if "gc" in self.f and t in (I32, I64):
            opts.append("gc")
        if "exceptions" in self.f and self.can_block():
            opts.append("try")
        if "wasi" in self.f and t == I32 and self.can_block():
            opts.append("wasi")
        if "traps" in self.f:
            opts.append("unreachable")
        o = self.pick_w(opts)
        self.depth += 1
        getattr(self, "v_" + o.replace(".", "_"))(t, locs, globs)
        self.depth -= 1

    def v_const(self, t, locs, globs) -> None:
        self.const(t)

    def v_local_get(self, t, locs, globs) -> None:
        self.emit("local.get", self.pick(locs))

    def v_local_tee(self, t, locs, globs) -> None:
        self.value(t)
        self.emit("local.tee", self.pick([i for i in locs if i not in self.ctx.reserved]))

    def v_global_get(self, t, locs, globs) -> None:
        self.emit("global.get", self.pick(globs))

    def canon(self, t: ValType) -> None:
        """Canonicalise a NaN on top of the stack (``x == x ? x : +nan``)."""
        if "canon_nans" not in self.f:
            return
        tmp = self.ctx.scratch_local(t)
        self.code += [Instr("local.tee", tmp), Instr(f"{t}.const", CANON_NAN[t]), Instr("local.get", tmp),
                      Instr("local.get", tmp), Instr(f"{t}.eq"), Instr("select")]

    def v_lane(self, t, locs, globs) -> None:
        self.scalar_from_v128(t)

    def v_unop(self, t, locs, globs) -> None:
        if t == V128:
            self.v128_unop()
        elif t in (I32, I64):
            ops = list(_INT_UN) + (list(_SIGN_EXT[t]) if "sign_ext" in self.f else [])
            self.value(t)
            self.emit(f"{t}.{self.pick(ops)}")
        else:
            ops = list(_FLT_UN_BITS) + list(_FLT_UN_ARITH)
            op = self.pick(ops)
            self.value(t)
            self.emit(f"{t}.{op}")
            if op in _FLT_UN_ARITH:
                self.canon(t)

    def v_binop(self, t, locs, globs) -> None:
        if t == V128:
            self.v128_binop()
            return
        if t in (I32, I64):
            ops = list(_INT_BIN) + (list(_INT_DIV) if "traps" in self.f else [])
        else:
            ops = list(_FLT_BIN_ARITH) + ["copysign"]
        op = self.pick(ops)
        self.value(t)
        self.value(t)
        self.emit(f"{t}.{op}")
        if op in _FLT_BIN_ARITH and t in (F32, F64):
            self.canon(t)

    def v_compare(self, t, locs, globs) -> None:
        a = self.pick(self.valtypes)
        if a == V128:
            self.scalar_from_v128(I32)
            return
        if a in (I32, I64):
            ops = list(_INT_REL) + ["eqz"]
        else:
            ops = list(_FLT_REL)
        op = self.pick(ops)
        self.value(a)
        if op != "eqz":
            self.value(a)
        self.emit(f"{a}.{op}")

    def v_convert(self, t, locs, globs) -> None:
        if t == V128:
            self.v128_from_scalars()
            return
        convs = _conversions(t, self.f)
        if not convs:
            self.const(t)
            return
        op, a, arith = self.pick(convs)
        self.value(a)
        self.emit(op)
        if arith:
            self.canon(t)

    def address(self, size: int) -> int:
        """Push an i32 address; returns the memarg offset to use.  Mostly in bounds of the initial
        memory, sometimes an arbitrary expression or a huge offset (OOB traps on purpose)."""
        k = self.choice(4) if "traps" in self.f else self.choice(3)
        limit = self.mem_pages * 65536
        if k == 0:
            self.emit("i32.const", self.draw(_ints(0, 64)))
            return self.draw(_ints(0, 16))
        if k == 1:
            self.emit("i32.const", self.draw(_ints(0, limit - size)))
            return 0
        if k == 2:
            self.value(I32)
            self.emit("i32.const", 0x7FF8)
            self.emit("i32.and")
            return self.draw(_ints(0, 0x7FF))
        # k == 3: unconstrained (usually out of bounds)
        self.value(I32)
        return self.draw(st.sampled_from([0, 1, limit - size + 1, 0xFFFFFFFF]))

    def v_load(self, t, locs, globs) -> None:
        if t == V128 and self.draw(_ints(0, 3)) == 3:
            self.v128_load_lane()
            return
        op, nat = self.pick(_LOADS[t])
        off = self.address(1 << nat)
        align = self.draw(_ints(0, nat))
        self.emit(op, MemArg(align, off))

    def v_memory_size(self, t, locs, globs) -> None:
        self.emit("memory.size", 0)

    def v_memory_grow(self, t, locs, globs) -> None:
        if self.flag():
            self.value(I32)
        else:
            self.emit("i32.const", self.draw(_ints(0, 2)))
        self.emit("memory.grow", 0)

    def v_select(self, t, locs, globs) -> None:
        self.value(t)
        self.value(t)
        self.value(I32)
        self.emit("select")

    def v_block(self, t, locs, globs) -> None:
        self.structured((t,))

    def v_call(self, t, locs, globs) -> None:
        self.call(self.pick(self.funcs_returning((t,))))

    def v_call_indirect(self, t, locs, globs) -> None:
        self.call_indirect((t,))

    def v_table(self, t, locs, globs) -> None:
        if self.flag():
            self.emit("table.size", self.main_table)
            return
        self.emit("i32.const", self.draw(_ints(0, self.table_size - (0 if "traps" in self.f else 1))))
        self.emit("table.get", self.main_table)
        self.emit("ref.is_null")

    def v_gc(self, t, locs, globs) -> None:
        self.gc_scalar(t)

    def v_try(self, t, locs, globs) -> None:
        self.try_table((t,))

    def v_wasi(self, t, locs, globs) -> None:
        self.wasi_value()

    def v_unreachable(self, t, locs, globs) -> None:
        self.emit("unreachable")

    # -- statements (stack-neutral) --------------------------------------------------------------
    def stmt(self) -> None:
        ctx = self.ctx
        opts = ["drop"]
        writable = [i for i in range(len(ctx.local_types)) if i not in ctx.reserved]
        if writable:
            opts.append("local.set")
        kept = (FUEL_GLOBAL + self.gbase,) + self.wasi_reserved_globals()
        mglobs = [i for i, gt in enumerate(self.global_types()) if gt.mutable and i not in kept]
        if mglobs:
            opts.append("global.set")
        if self.has_mem:
            opts.append("store")
            if "bulk_memory" in self.f:
                opts.append("bulk")
        if self.print_funcs:
            opts.append("print")
        if "calls" in self.f:
            opts.append("call")
        if "tables" in self.f and "traps" in self.f:
            opts.append("call_indirect")
        if self.can_block():
            opts.append("block")
            if "loops" in self.f:
                opts.append("counted_loop")
                if "branches" in self.f:
                    opts.append("br_table_loop")
            if "branches" in self.f:
                opts.append("if_skip")
        if "branches" in self.f:
            opts += ["br_if", "br", "br_table", "return"]
        if len(self.tabs) and "bulk_memory" in self.f:
            opts.append("table_write")
        if self.passive_datas or (self.passive_elems and "traps" in self.f):
            opts.append("segment")
        if len(self.mems) > 1:
            opts.append("mem2")
        if "gc" in self.f:
            opts.append("gc")
        if "exceptions" in self.f:
            opts.append("exn")
        if "wasi" in self.f and self.can_block():
            opts.append("wasi")
        o = self.pick_w(opts)
        if o in ("table_write", "segment", "mem2", "br_table_loop", "if_skip"):
            getattr(self, "s_" + o)()
            return
        if o in ("gc", "exn", "wasi"):
            getattr(self, o + "_stmt")()
            return
        if o == "drop":
            self.value(self.pick(self.valtypes))
            self.emit("drop")
        elif o == "local.set":
            i = self.pick(writable)
            self.value(ctx.local_types[i])
            self.emit("local.set", i)
        elif o == "global.set":
            i = self.pick(mglobs)
            self.value(self.global_types()[i].type)
            self.emit("global.set", i)
        elif o == "store":
            t = self.pick(self.valtypes)
            if t == V128 and self.flag():
                self.v128_store_lane()
                return
            op, nat = self.pick(_STORES[t])
            off = self.address(1 << nat)
            self.value(t)
            self.emit(op, MemArg(self.draw(_ints(0, nat)), off))
        elif o == "bulk":
            op = self.pick(["memory.fill", "memory.copy"])
            self.address(1)  # dst (offset unused: bulk ops have no memarg)
            if op == "memory.fill":
                self.value(I32)
            else:
                self.address(1)
            self.emit("i32.const", self.draw(_ints(0, 64)))
            self.emit(op, 0 if op == "memory.fill" else (0, 0))
        elif o == "print":
            t = self.pick(sorted(self.print_funcs))
            self.value(t)
            self.emit("call", self.print_funcs[t])
        elif o == "call":
            fidx = len(self.imports) + self.choice(self.nuser)
            self.call(fidx)
            for _ in self.types[self.func_types[fidx]].results:
                self.emit("drop")
        elif o == "call_indirect":
            ti = self.call_indirect(None)
            for _ in self.types[ti].results:
                self.emit("drop")
        elif o == "block":
            results = self.draw_valtypes(0, 2 if "multi_value" in self.f else 1)
            self.structured(results)
            for _ in results:
                self.emit("drop")
        elif o == "counted_loop":
            self.counted_loop()
        elif o == "br_if":
            lab = self.choice(len(ctx.labels))
            types = ctx.labels[-1 - lab].types
            self.values(types)
            self.value(I32)
            self.emit("br_if", lab)
            for _ in types:
                self.emit("drop")
        elif o == "br":
            lab = self.choice(len(ctx.labels))
            self.values(ctx.labels[-1 - lab].types)
            self.emit("br", lab)
        elif o == "br_table":
            default = self.choice(len(ctx.labels))
            types = ctx.labels[-1 - default].types
            same = self.labels_with(types)
            targets = tuple(self.pick(same) for _ in range(self.draw(_ints(0, 3))))
            self.values(types)
            self.value(I32)
            self.emit("br_table", (targets, default))
        elif o == "return":
            self.values(tuple(ctx.ft.results))
            self.emit("return")

    def counted_loop(self) -> None:
        """``c = K; loop { fuel check; stmts; br_if 0 (c -= 1) }`` with a reserved counter local."""
        c = self.ctx.new_local(I32, reserved=True)
        self.emit("i32.const", self.draw(_ints(0, 5)))
        self.emit("local.set", c)
        self.emit("loop", None)
        self.blocks += 1
        self.ctx.labels.append(_Label("loop", ()))
        self.fuel_check()
        for _ in range(self.draw(_ints(0, 3))):
            self.stmt()
        self.code += [Instr("local.get", c), Instr("i32.const", 1), Instr("i32.sub"), Instr("local.tee", c),
                      Instr("br_if", 0)]
        self.ctx.labels.pop()
        self.blocks -= 1
        self.emit("end")

    @property
    def nuser(self) -> int:
        """Number of generated (callable) functions: excludes imports and the ``run_bits`` wrapper."""
        return self._nuser

    _nuser = 0


def _normalize(features: Optional[Iterable[str]]) -> FrozenSet[str]:
    if features is None:
        return DEFAULT_FEATURES
    fs = frozenset(features)
    unknown = fs - ALL_FEATURES
    if unknown:
        raise ValueError(f"unknown generator features: {sorted(unknown)}")
    return fs


class Size(NamedTuple):
    """Upper bounds of the drawn sizes (shrinking moves each towards its minimum).

    ``max_budget`` is the per-function instruction budget of the random code (the fuel checks and NaN
    canonicalisation come on top); ``max_fuel`` the initial value of the fuel global, which bounds
    loop iterations plus calls of one run."""

    max_funcs: int = 4
    max_budget: int = 40
    max_fuel: int = 30


@st.composite
def _modules(draw, feats: FrozenSet[str], size: Size, boost: FrozenSet[str] = frozenset()) -> Module:
    return _Gen(draw, feats, size, boost).build()


def modules(features: Optional[Iterable[str]] = None, size: Optional[Size] = None,
            boost: Iterable[str] = ()) -> st.SearchStrategy[Module]:
    """Valid, terminating modules (as ASTs); see the module docstring for their shape.  ``boost``:
    coverage kinds (:data:`vm.snapshot.coverage.KINDS`) to make likelier (a campaign steering towards
    what it has not reached; unknown names are ignored)."""
    return _modules(_normalize(features), size or Size(), frozenset(boost))


@st.composite
def _cases(draw, feats: FrozenSet[str], size: Size, boost: FrozenSet[str] = frozenset()) -> GeneratedCase:
    m = draw(_modules(feats, size, boost))
    ft = m.func_type(m.func_typeidxs()[len(m.imported("func"))])
    args = draw(args_for(ft))
    return GeneratedCase(
        module=m,
        wasm=encode_module(m),
        export="run",
        args=args,
        functype=ft,
        deterministic="canon_nans" in feats,
        features=feats,
        wasi=dict(WASI_CONFIG) if "wasi" in feats else None,
    )


def cases(features: Optional[Iterable[str]] = None, size: Optional[Size] = None,
          boost: Iterable[str] = ()) -> st.SearchStrategy[GeneratedCase]:
    """:class:`GeneratedCase` values: a generated module plus arguments for its ``run`` export.

    ``features``: a subset of :data:`ALL_FEATURES` (default: all); ``size``: see :class:`Size`;
    ``boost``: see :func:`modules`."""
    return _cases(_normalize(features), size or Size(), frozenset(boost))


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]
