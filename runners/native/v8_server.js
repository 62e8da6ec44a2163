// wcr's long-lived V8 runner: serves many resume modules from one node process (start-up ~100 ms would
// dominate one process per run).  Protocol on stdin/stdout: wcr's one framed protocol
// (runners/framing.py), a 4-byte big-endian length, then that many bytes of UTF-8 JSON, both ways.
//   request:  {shim: base64 (the spectest shim, runners/native/adapter.py), resume: base64 (spectest
//              imports renamed to wcr_spectest), reader: base64, memories: [names], tables: [names],
//              wasi: null | {args, env: {name: value}, preopens: {guest: host dir}, stdin, stdout, stderr
//              (host file paths), status: export name of the WASI prologue's status, empty: none}}
//   response: {run_events, global_events, results, error: {phase, name, message} | null,
//              memories: {name: base64}, tables: {name: [0 = null | 1]},
//              wasi (when asked): {exited, exit_code, status}}
// A WASI program (runners/native/sandbox.py) runs under node:wasi: `resume` is not a `_start`, and the
// original module may export one, so node is handed a stand-in instance whose `_start` calls the reader's
// `run` and whose `memory` is the resume module's (node only binds the memory and calls `_start`);
// returnOnExit turns proc_exit into a return with the exit code.
// Every request gets fresh instances, so runs cannot see each other; the spectest memory, tables and
// globals are defined by the shim (generated from vm/runtime/spectest.py), so this host provides only
// the two integer prints.  A hang or a crash is handled by the parent (it kills and restarts this
// process).  Only integers cross into JS.
'use strict';
const fs = require('fs');

const shimModules = new Map(); // shim base64 → compiled module (a module has one of a few shapes)

function describe(e, phase) {
  if (e instanceof WebAssembly.Exception) {  // a Wasm exception that left resume (it has no message)
    return { phase, name: 'WebAssembly.Exception', message: 'uncaught wasm exception' };
  }
  const name = (e && e.constructor && e.constructor.name) || typeof e;
  return { phase, name, message: String((e && e.message) || e) };
}

function runJob(job) {
  const out = { run_events: [], global_events: [], results: null, error: null, memories: {}, tables: {} };
  let events = [];
  const host = {
    print_i32: (v) => { events.push([32, String(v)]); },
    print_i64: (v) => { events.push([64, String(v)]); },
  };
  let resume = null;
  let reader = null;
  let wasi = null;
  const fds = [];
  try {
    if (job.wasi) {
      const { WASI } = require('node:wasi');
      for (const [p, mode] of [[job.wasi.stdin, 'r'], [job.wasi.stdout, 'w'], [job.wasi.stderr, 'w']]) {
        fds.push(fs.openSync(p, mode));
      }
      wasi = new WASI({ version: 'preview1', args: job.wasi.args, env: job.wasi.env, preopens: job.wasi.preopens,
        stdin: fds[0], stdout: fds[1], stderr: fds[2], returnOnExit: true });
      out.wasi = { exited: false, exit_code: null, status: 0 };
    }
    if (!shimModules.has(job.shim)) {
      shimModules.set(job.shim, new WebAssembly.Module(Buffer.from(job.shim, 'base64')));
    }
    const shim = new WebAssembly.Instance(shimModules.get(job.shim), { spectest: host });
    const mod = new WebAssembly.Module(Buffer.from(job.resume, 'base64'));
    try {
      // host references of the state (vm/snapshot/resume/heap_part.py): any non-null externref
      const hosts = {};
      for (const imp of WebAssembly.Module.imports(mod)) {
        if (imp.module === 'wcr_host') {
          hosts[imp.name] = new WebAssembly.Global({ value: 'externref', mutable: false }, { wcr_host: imp.name });
        }
      }
      resume = new WebAssembly.Instance(mod, { wcr_spectest: shim.exports, wcr_host: hosts,
        ...(wasi ? wasi.getImportObject() : {}) });
    } catch (e) {
      out.error = describe(e, 'instantiate');
    }
    if (resume) {
      reader = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(job.reader, 'base64')),
        { spectest: host, wcr_resume: resume.exports });
      try {
        let r;
        if (wasi) {
          const start = () => {
            try {
              r = reader.exports.run();
            } catch (e) {
              if (typeof e === 'symbol') out.wasi.exited = true;  // node's proc_exit unwinding
              throw e;
            }
          };
          const code = wasi.start({ exports: { memory: resume.exports.memory, _start: start } });
          if (out.wasi.exited) out.wasi.exit_code = code;
        } else {
          r = reader.exports.run();
        }
        if (!wasi || !out.wasi.exited) out.results = (r === undefined ? [] : Array.isArray(r) ? r : [r]).map(String);
      } catch (e) {
        out.error = describe(e, 'run');
      }
    }
  } catch (e) {
    out.error = describe(e, 'setup');
  }
  out.run_events = events;
  events = [];
  try {
    if (wasi && resume && job.wasi.status) out.wasi.status = resume.exports[job.wasi.status].value;
    if (reader) {
      reader.exports.dump_globals();
      out.global_events = events;
      for (const m of job.memories) {
        out.memories[m] = Buffer.from(resume.exports[m].buffer).toString('base64');
      }
      for (const t of job.tables) {
        const tab = resume.exports[t];
        const marks = [];
        for (let i = 0; i < tab.length; i++) marks.push(tab.get(i) === null ? 0 : 1);
        out.tables[t] = marks;
      }
    }
  } catch (e) {
    if (!out.error) out.error = describe(e, 'readback');
  }
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch (e) {  // node:wasi may have closed it already (a program's fd_close of a stream)
      if (e.code !== 'EBADF') throw e;
    }
  }
  return out;
}

function readExactly(n) {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    let k = 0;
    try {
      k = fs.readSync(0, buf, got, n - got, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      throw e;
    }
    if (k === 0) return null;
    got += k;
  }
  return buf;
}

function writeAll(buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

for (;;) {
  const head = readExactly(4);
  if (head === null) break;
  const body = readExactly(head.readUInt32BE(0));
  if (body === null) break;
  const out = Buffer.from(JSON.stringify(runJob(JSON.parse(body.toString('utf8')))), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(out.length, 0);
  writeAll(Buffer.concat([len, out]));
}
