// wcr's V8 target: runs a resume module under node and prints one JSON object on stdout.
// Usage: node v8_runner.js JOB.json   where JOB = {dir, memories: [names], tables: [names]} and
// DIR holds shim.wasm, resume.wasm (spectest imports renamed to wcr_spectest), reader.wasm.
// Only integers cross into JS (see runners/native/_common.py), so NaN payloads survive.
'use strict';
const fs = require('fs');
const path = require('path');

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const load = (name) => new WebAssembly.Module(fs.readFileSync(path.join(job.dir, name)));
const out = { run_events: [], global_events: [], results: null, error: null, memories: {}, tables: {} };
let events = [];

function describe(e, phase) {
  const name = (e && e.constructor && e.constructor.name) || typeof e;
  return { phase, name, message: String((e && e.message) || e) };
}

const host = {
  print_i32: (v) => { events.push([32, String(v)]); },
  print_i64: (v) => { events.push([64, String(v)]); },
  memory: new WebAssembly.Memory({ initial: 1, maximum: 2 }),
  table: new WebAssembly.Table({ initial: 10, maximum: 20, element: 'anyfunc' }),
  global_i32: new WebAssembly.Global({ value: 'i32', mutable: false }, 666),
  global_i64: new WebAssembly.Global({ value: 'i64', mutable: false }, 666n),
  global_f32: new WebAssembly.Global({ value: 'f32', mutable: false }, 666.6),
  global_f64: new WebAssembly.Global({ value: 'f64', mutable: false }, 666.6),
};

let resume = null;
let reader = null;
try {
  const shim = new WebAssembly.Instance(load('shim.wasm'), { spectest: host });
  const mod = load('resume.wasm');
  try {
    resume = new WebAssembly.Instance(mod, { wcr_spectest: shim.exports });
  } catch (e) {
    out.error = describe(e, 'instantiate');
  }
  if (resume) {
    reader = new WebAssembly.Instance(load('reader.wasm'),
      { spectest: host, wcr_resume: resume.exports });
    try {
      const r = reader.exports.run();
      out.results = (r === undefined ? [] : Array.isArray(r) ? r : [r]).map(String);
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
process.stdout.write(JSON.stringify(out));
