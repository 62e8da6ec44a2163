"""The ``wasi_snapshot_preview1`` host functions: the table of every function's signature and the
host-module factory, plus the functions that touch no file (args, environ, clocks, random, process,
polling, sockets).  The fd functions live in :mod:`.fdops`, the path functions in :mod:`.pathops`.

Every function of preview 1 exists with its exact signature, so any WASI program links (wasi-libc
imports many it rarely calls); ``proc_raise`` returns ``ENOTSUP`` and the ``sock_*`` functions
``ENOTSOCK``/``EBADF``, as in wasmtime.  A host
function reads the state through ``store.wasi`` at each call (a restore replaces it), returns its errno
(an implementation raises :class:`~.constants.WasiError`), and traps like wasmtime on a pointer outside
memory (:mod:`.guest`).  Invalid enum values and flag bits return ``EINVAL`` (wasmtime traps instead).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from ...errors import ProcExit
from ...types import I32, I64, FuncType
from . import fdops, pathops
from .constants import (
    CLOCK_MONOTONIC,
    CLOCK_PROCESS_CPUTIME_ID,
    CLOCK_REALTIME,
    CLOCK_THREAD_CPUTIME_ID,
    EBADF,
    EINVAL,
    ENOTSOCK,
    ENOTSUP,
    ESUCCESS,
    EVENT_SIZE,
    EVENTTYPE_CLOCK,
    EVENTTYPE_FD_READ,
    EVENTTYPE_FD_WRITE,
    SUBSCRIPTION_CLOCK_ABSTIME,
    SUBSCRIPTION_SIZE,
    WasiError,
)
from .guest import Guest
from .state import CLOCK_TICK_NS, WasiConfig, WasiState

__all__ = ["SIGNATURES", "wasi_exports"]

_A, _B = I32, I64
#: every preview-1 function: name → (parameter types, result types), as in ``wasi_snapshot_preview1.witx``
SIGNATURES: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "args_get": ((_A, _A), (_A,)),
    "args_sizes_get": ((_A, _A), (_A,)),
    "environ_get": ((_A, _A), (_A,)),
    "environ_sizes_get": ((_A, _A), (_A,)),
    "clock_res_get": ((_A, _A), (_A,)),
    "clock_time_get": ((_A, _B, _A), (_A,)),
    "fd_advise": ((_A, _B, _B, _A), (_A,)),
    "fd_allocate": ((_A, _B, _B), (_A,)),
    "fd_close": ((_A,), (_A,)),
    "fd_datasync": ((_A,), (_A,)),
    "fd_fdstat_get": ((_A, _A), (_A,)),
    "fd_fdstat_set_flags": ((_A, _A), (_A,)),
    "fd_fdstat_set_rights": ((_A, _B, _B), (_A,)),
    "fd_filestat_get": ((_A, _A), (_A,)),
    "fd_filestat_set_size": ((_A, _B), (_A,)),
    "fd_filestat_set_times": ((_A, _B, _B, _A), (_A,)),
    "fd_pread": ((_A, _A, _A, _B, _A), (_A,)),
    "fd_prestat_get": ((_A, _A), (_A,)),
    "fd_prestat_dir_name": ((_A, _A, _A), (_A,)),
    "fd_pwrite": ((_A, _A, _A, _B, _A), (_A,)),
    "fd_read": ((_A, _A, _A, _A), (_A,)),
    "fd_readdir": ((_A, _A, _A, _B, _A), (_A,)),
    "fd_renumber": ((_A, _A), (_A,)),
    "fd_seek": ((_A, _B, _A, _A), (_A,)),
    "fd_sync": ((_A,), (_A,)),
    "fd_tell": ((_A, _A), (_A,)),
    "fd_write": ((_A, _A, _A, _A), (_A,)),
    "path_create_directory": ((_A, _A, _A), (_A,)),
    "path_filestat_get": ((_A, _A, _A, _A, _A), (_A,)),
    "path_filestat_set_times": ((_A, _A, _A, _A, _B, _B, _A), (_A,)),
    "path_link": ((_A, _A, _A, _A, _A, _A, _A), (_A,)),
    "path_open": ((_A, _A, _A, _A, _A, _B, _B, _A, _A), (_A,)),
    "path_readlink": ((_A, _A, _A, _A, _A, _A), (_A,)),
    "path_remove_directory": ((_A, _A, _A), (_A,)),
    "path_rename": ((_A, _A, _A, _A, _A, _A), (_A,)),
    "path_symlink": ((_A, _A, _A, _A, _A), (_A,)),
    "path_unlink_file": ((_A, _A, _A), (_A,)),
    "poll_oneoff": ((_A, _A, _A, _A), (_A,)),
    "proc_exit": ((_A,), ()),
    "proc_raise": ((_A,), (_A,)),
    "sched_yield": ((), (_A,)),
    "random_get": ((_A, _A), (_A,)),
    "sock_accept": ((_A, _A, _A), (_A,)),
    "sock_recv": ((_A, _A, _A, _A, _A, _A), (_A,)),
    "sock_send": ((_A, _A, _A, _A, _A), (_A,)),
    "sock_shutdown": ((_A, _A), (_A,)),
}


# -- args, environ ----------------------------------------------------------------------------------
def _strings_get(items: Any, g: Guest, ptrs: int, buf: int) -> int:
    for i, s in enumerate(items):
        g.u32(ptrs + 4 * i, buf)
        g.write(buf, s + b"\0")
        buf += len(s) + 1
    return ESUCCESS


def _sizes_get(items: Any, g: Guest, count_ptr: int, size_ptr: int) -> int:
    g.u32(count_ptr, len(items))
    g.u32(size_ptr, sum(len(s) + 1 for s in items))
    return ESUCCESS


def args_get(st: WasiState, argv: int, buf: int) -> int:
    return _strings_get(st.args, Guest(st.memory), argv, buf)


def args_sizes_get(st: WasiState, argc_ptr: int, size_ptr: int) -> int:
    return _sizes_get(st.args, Guest(st.memory), argc_ptr, size_ptr)


def environ_get(st: WasiState, env: int, buf: int) -> int:
    return _strings_get(st.env, Guest(st.memory), env, buf)


def environ_sizes_get(st: WasiState, count_ptr: int, size_ptr: int) -> int:
    return _sizes_get(st.env, Guest(st.memory), count_ptr, size_ptr)


# -- clocks, random ---------------------------------------------------------------------------------
_CLOCKS = (CLOCK_REALTIME, CLOCK_MONOTONIC)
#: the CPU-time clocks: wasmtime has none (``EBADF``)
_CPU_CLOCKS = (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID)


def _clock(clock: int) -> None:
    if clock not in _CLOCKS:
        raise WasiError(EBADF if clock in _CPU_CLOCKS else EINVAL)


def clock_res_get(st: WasiState, clock: int, ptr: int) -> int:
    _clock(clock)
    Guest(st.memory).u64(ptr, 1 if st.real_clock else CLOCK_TICK_NS)
    return ESUCCESS


def clock_time_get(st: WasiState, clock: int, precision: int, ptr: int) -> int:  # noqa: ARG001 - witx
    _clock(clock)
    g = Guest(st.memory)
    g.check(ptr, 8)  # the pointer is checked before the clock advances
    g.u64(ptr, st.now())
    return ESUCCESS


def random_get(st: WasiState, buf: int, n: int) -> int:
    g = Guest(st.memory)
    g.check(buf, n)  # before the stream advances
    g.write(buf, st.random_bytes(n))
    return ESUCCESS


# -- process, scheduling, polling, sockets ------------------------------------------------------------
def proc_exit(st: WasiState, code: int) -> None:
    st.exit_code = code
    raise ProcExit(code)


def proc_raise(st: WasiState, sig: int) -> int:  # noqa: ARG001 - witx
    return ENOTSUP  # as wasmtime


def sched_yield(st: WasiState) -> int:  # noqa: ARG001 - witx
    return ESUCCESS


def poll_oneoff(st: WasiState, in_ptr: int, out_ptr: int, n: int, nevents_ptr: int) -> int:
    """Clock subscriptions: the virtual clock jumps to the earliest deadline (real clock: no sleep,
    the deadline is reported as reached); fd subscriptions are ready at once."""
    if n == 0:
        raise WasiError(EINVAL)
    g = Guest(st.memory)
    raw = g.read(in_ptr, n * SUBSCRIPTION_SIZE)
    g.check(out_ptr, n * EVENT_SIZE)
    events = []
    wait = None
    for i in range(n):
        sub = raw[i * SUBSCRIPTION_SIZE:(i + 1) * SUBSCRIPTION_SIZE]
        userdata, tag = int.from_bytes(sub[0:8], "little"), sub[8]
        if tag == EVENTTYPE_CLOCK:
            clock, timeout = int.from_bytes(sub[16:20], "little"), int.from_bytes(sub[24:32], "little")
            flags = int.from_bytes(sub[40:42], "little")
            err = ESUCCESS if clock in _CLOCKS else EINVAL
            delay = max(0, timeout - st.fs_time()) if flags & SUBSCRIPTION_CLOCK_ABSTIME else timeout
            events.append((userdata, err, tag, delay))
            if err == ESUCCESS:
                wait = delay if wait is None else min(wait, delay)
        elif tag in (EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE):
            fd = int.from_bytes(sub[16:20], "little")
            err = fdops.poll_ready(st, fd, tag)
            events.append((userdata, err, tag, -1))
        else:
            raise WasiError(EINVAL)
    if any(d < 0 or err != ESUCCESS for _, err, _, d in events):
        wait = None  # something is ready now: no clock fires
    elif wait is not None and not st.real_clock:
        st.clock_ns += wait
    count = 0
    for userdata, err, tag, delay in events:
        if delay >= 0 and err == ESUCCESS and delay != wait:
            continue
        ev = bytearray(EVENT_SIZE)
        ev[0:8] = userdata.to_bytes(8, "little")
        ev[8:10] = err.to_bytes(2, "little")
        ev[10] = tag
        g.write(out_ptr + count * EVENT_SIZE, bytes(ev))
        count += 1
    g.u32(nevents_ptr, count)
    return ESUCCESS


def _sock(st: WasiState, fd: int, *args: int) -> int:  # noqa: ARG001 - every sock_* signature
    """No sockets (a program gets none): ``ENOTSOCK`` for an open fd, ``EBADF`` otherwise (as wasmtime)."""
    st.fd(fd)
    return ENOTSOCK


_IMPLS: Dict[str, Callable[..., Any]] = {
    "args_get": args_get, "args_sizes_get": args_sizes_get, "environ_get": environ_get,
    "environ_sizes_get": environ_sizes_get, "clock_res_get": clock_res_get, "clock_time_get": clock_time_get,
    "random_get": random_get, "proc_exit": proc_exit, "proc_raise": proc_raise, "sched_yield": sched_yield,
    "poll_oneoff": poll_oneoff,
    **fdops.FUNCTIONS, **pathops.FUNCTIONS,
}


def _host(store: Any, name: str, impl: Callable[..., Any]) -> Callable[[list], list]:
    void = not SIGNATURES[name][1]

    def fn(args: list) -> list:
        st = store.wasi
        if st is None:  # a store without WASI state (vm.api links these only with one): a fresh one
            st = store.wasi = WasiState.start(WasiConfig(), store.limits)
        try:
            res = impl(st, *args)
        except WasiError as e:
            return [e.errno]
        return [] if void else [res]

    return fn


def wasi_exports(store: Any) -> Dict[str, Any]:
    """The host-module factory: every preview-1 function bound to ``store.wasi``."""
    out: Dict[str, Any] = {}
    for name, (params, results) in SIGNATURES.items():
        impl = _IMPLS.get(name, _sock)
        out[name] = store.host_func(name, FuncType(params, results), _host(store, name, impl))
    return out
