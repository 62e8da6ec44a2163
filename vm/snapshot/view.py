"""A human view of a snapshot (``wcr snapshot show FILE``): ``view(state) -> dict``, ``show(bytes) -> YAML``.

The YAML is written by a tiny emitter here (vm/ imports the standard library only); strings are always
double-quoted JSON strings, which YAML reads as the same strings, so the output parses with any YAML
loader.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

from ..runtime.objects import PAGE_SIZE
from ..values import format_value
from .codec import VERSION, decode
from .model import KINDS, HeapObject, State, WasiSnapshot


def _func_location(state: State) -> Dict[int, Tuple[str, Any]]:
    """Function address → ("host", "mod.name") or ("instance", (instance, index))."""
    out: Dict[int, Tuple[str, Any]] = {}
    for h in state.hosts:
        if h.kind == "func":
            out[h.addr] = ("host", f"{h.module}.{h.name}")
    for n, ist in enumerate(state.instances):
        for j, a in enumerate(ist.funcs):
            if a not in out:
                out[a] = ("instance", (n, j))
    return out


def view(state: State) -> Dict[str, Any]:
    """The snapshot as plain data (what ``show`` prints)."""
    loc = _func_location(state)

    def fname(a: int) -> Dict[str, Any]:
        d: Dict[str, Any] = {"address": a}
        where = loc.get(a)
        if where is not None and where[0] == "instance":
            d["instance"], d["index"] = where[1]
        elif where is not None:
            d["host"] = where[1]
        if a in state.names:
            d["name"] = state.names[a]
        return d

    out: Dict[str, Any] = {"format_version": VERSION, "config": dict(state.config)}
    out["modules"] = [f"sha256:{m}" for m in state.modules]
    out["addresses"] = dict(state.counts)
    out["hosts"] = [f"{h.kind} {h.addr} = {h.module}.{h.name}" for h in state.hosts]
    insts = []
    for n, ist in enumerate(state.instances):
        d: Dict[str, Any] = {"instance": n, "module": f"sha256:{state.modules[ist.module]}"
                             if ist.module < len(state.modules) else ist.module}
        if ist.name is not None:
            d["registered_as"] = ist.name
        for k in KINDS:
            sp = ist.space(k)
            if sp:
                d["memories" if k == "memory" else k + "s"] = sp
        if any(ist.elem_dropped):
            d["dropped_elems"] = [i for i, x in enumerate(ist.elem_dropped) if x]
        if any(ist.data_dropped):
            d["dropped_datas"] = [i for i, x in enumerate(ist.data_dropped) if x]
        insts.append(d)
    out["instances"] = insts
    mems = []
    for a, ms in enumerate(state.mems):
        h = hashlib.sha256()
        zero = bytes(PAGE_SIZE)
        for p in range(ms.pages):
            h.update(ms.nonzero.get(p, zero))
        pages = sorted(ms.nonzero)
        mems.append({"address": a, "pages": ms.pages, "nonzero_pages": len(pages),
                     "first_nonzero_pages": pages[:16], "sha256": h.hexdigest()})
    out["memories"] = mems
    out["tables"] = [{"address": a, "size": len(el), "non_null": sum(1 for v in el if v[0] != "ref.null")}
                     for a, el in enumerate(state.tables)]
    out["globals"] = [format_value(v) for v in state.globals]
    if state.heap:
        out["heap"] = [_heap_object(i, ob) for i, ob in enumerate(state.heap)]
    if state.segments:
        out["segments"] = [{"instance": n, "elem": i, "items": [format_value(v) for v in items]}
                           for n, i, items in state.segments]
    out["host_log"] = {"entries": len(state.host_log),
                       "last": [f"{n}({', '.join(format_value(v) for v in vs)})"
                                for n, vs in state.host_log[-10:]]}
    ts = state.thread
    if ts is not None:
        th: Dict[str, Any] = {"status": ts.status, "instructions": ts.count, "entry": fname(ts.entry),
                              "args": [format_value(v) for v in ts.args]}
        if ts.status == "done":
            th["results"] = [format_value(v) for v in ts.results]
        if ts.trap is not None:
            th["trap"] = ts.trap
        if ts.exception is not None:
            th["exception"] = format_value(ts.exception)
        frames = []
        for i, fr in enumerate(ts.frames):
            d = fname(fr.func)
            d = {"frame": i, **{("func_" + k if k != "name" else "function"): v for k, v in d.items()},
                 "pc": fr.pc, "locals": [format_value(v) for v in fr.locals],
                 "stack": [format_value(v) for v in fr.stack],
                 "labels": [f"{lb.kind}@{lb.start} params={lb.nparams} results={lb.nresults} "
                            f"height={lb.height}" for lb in fr.labels]}
            if fr.caught:
                d["caught"] = [f"try@{off} {format_value(v)}" for off, v in fr.caught]
            frames.append(d)
        th["frames"] = frames
        out["thread"] = th
    if state.wasi is not None:
        out["wasi"] = _wasi(state.wasi)
    return out


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _wasi(ws: WasiSnapshot) -> Dict[str, Any]:
    """Section 13 for people: args, env, the fd table, every file by guest path with its size, the
    output sizes, clock, random stream, exit code."""
    fds = []
    for f in ws.fds:
        d: Dict[str, Any] = {"fd": f.fd, "kind": f.kind}
        if f.ino >= 0:
            d["ino"] = f.ino
        if f.preopen is not None:
            d["preopen"] = f.preopen
        d["offset"] = f.offset
        fds.append(d)
    out: Dict[str, Any] = {"args": [_text(a) for a in ws.args], "env": [_text(e) for e in ws.env], "fds": fds,
                           "files": _files(ws), "stdout_bytes": len(ws.stdout), "stderr_bytes": len(ws.stderr),
                           "stdin_bytes": len(ws.stdin), "clock_ns": ws.clock_ns, "real_clock": ws.real_clock,
                           "seed": ws.seed, "random_counter": ws.random_counter}
    if ws.exit_code is not None:
        out["exit_code"] = ws.exit_code
    if ws.memory is not None:
        out["memory"] = ws.memory
    return out


def _files(ws: WasiSnapshot) -> List[Dict[str, Any]]:
    """Every entry under every root by guest path (kind, size of a file, target of a symlink).  The state
    is not checked here (``show`` only decodes), so the walk guards against cycles and dangling entries."""
    by_ino = {i.ino: i for i in ws.inodes}
    out: List[Dict[str, Any]] = []
    seen = set()
    todo = [(path.rstrip("/") or "/", ino) for path, ino in ws.roots]
    while todo:
        path, ino = todo.pop()
        node = by_ino.get(ino)
        if node is None or ino in seen:
            continue
        seen.add(ino)
        d: Dict[str, Any] = {"path": path, "kind": node.kind}
        if node.kind == "file":
            d["size"] = len(node.data)
        elif node.kind == "symlink":
            d["target"] = node.target
        out.append(d)
        todo.extend((path.rstrip("/") + "/" + name, child) for name, child in node.entries)
    return sorted(out, key=lambda d: d["path"])


def _heap_object(i: int, ob: HeapObject) -> Dict[str, Any]:
    """One heap object: id, kind, its type as ``instance N type J`` or its tag address, and its fields
    (the first 32 of a long array, with the count)."""
    d: Dict[str, Any] = {"id": i, "kind": ob.kind}
    if ob.kind == "exn":
        d["tag"] = ob.tag
    elif ob.type is not None:
        d["type"] = f"instance {ob.type[0]} type {ob.type[1]}"
    d["fields"] = [format_value(v) for v in ob.fields[:32]]
    if len(ob.fields) > 32:
        d["field_count"] = len(ob.fields)
    return d


def show(data: bytes) -> str:
    """Decode snapshot bytes and render them as YAML (raises SnapshotError on bad input)."""
    return to_yaml(view(decode(data)))


def to_yaml(obj: Any, indent: int = 0) -> str:
    lines: List[str] = []
    _emit(obj, indent, lines, None)
    return "\n".join(lines) + "\n"


def _scalar(x: Any) -> str:
    if x is None:
        return "null"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, int):
        return str(x)
    return json.dumps(str(x), ensure_ascii=True)


def _key(k: Any) -> str:
    s = str(k)
    if s and all(c.isalnum() or c in "_-" for c in s) and not s[0].isdigit():
        return s
    return json.dumps(s)


def _emit(obj: Any, ind: int, lines: List[str], prefix: Optional[str]) -> None:
    pad = " " * ind
    if isinstance(obj, dict):
        if not obj:
            lines.append(f"{pad}{prefix or ''}{{}}" if prefix is None else f"{prefix}{{}}")
            return
        first = True
        for k, v in obj.items():
            lead = prefix if (first and prefix is not None) else pad
            first = False
            if isinstance(v, (dict, list)) and v and not _flat(v):
                lines.append(f"{lead}{_key(k)}:")
                _emit(v, ind + 2, lines, None)
            else:
                lines.append(f"{lead}{_key(k)}: {_inline(v)}")
    elif isinstance(obj, list):
        if not obj:
            lines.append(f"{prefix if prefix is not None else pad}[]")
            return
        for v in obj:
            if isinstance(v, dict) and v:
                _emit(v, ind + 2, lines, pad + "- ")
            elif isinstance(v, list) and v:
                lines.append(f"{pad}-")
                _emit(v, ind + 2, lines, None)
            else:
                lines.append(f"{pad}- {_inline(v)}")
    else:
        lines.append(f"{prefix if prefix is not None else pad}{_scalar(obj)}")


def _flat(v: Any) -> bool:
    """Short lists of scalars print inline (``[0, 1, 2]``)."""
    return isinstance(v, list) and len(v) <= 32 and not any(isinstance(x, (dict, list)) for x in v)


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{}" if not v else "{" + ", ".join(f"{_key(k)}: {_inline(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return _scalar(v)
