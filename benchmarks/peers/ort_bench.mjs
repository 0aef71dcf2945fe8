// ONNX Runtime's side of the peer benchmark (benchmarks/peers/run.sh, benchmarks/README.md).
//
//   node benchmarks/peers/ort_bench.mjs --model FILE.onnx --tower image|text --input FILE
//       [--length L] [--warmup W] [--iters K] [--threads T] [--features-out FILE]
//
// The counterpart of peer_bench.cpp: one InferenceSession (intra-op threads T (default 2), inter-op
// threads 1, sequential execution, graph optimisation level "all"), the whole batch read from FILE
// (image: raw float32 [B, 3, n, n], n from the model's input shape; text: raw int64 ids [B, L], L
// given by --length: the ids already cut after every row's end token, as zsclip cuts them), W untimed
// runs, K timed runs; one JSON object on stdout. --features-out writes the last run's output (raw
// float32). Errors: a message on stderr and exit status 1.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));

function fail(msg, code = 1) {
  process.stderr.write(`ort_bench: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const a = { warmup: 2, iters: 5, threads: 2, length: 0, featuresOut: '' };
  const ints = { '--warmup': 'warmup', '--iters': 'iters', '--threads': 'threads', '--length': 'length' };
  const strs = { '--model': 'model', '--tower': 'tower', '--input': 'input', '--features-out': 'featuresOut' };
  for (let i = 0; i < argv.length; i += 2) {
    const f = argv[i];
    const v = argv[i + 1];
    if (v === undefined) fail(`${f} needs a value`, 2);
    if (f in ints) {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) fail(`${f} needs an integer >= 0, got '${v}'`, 2);
      a[ints[f]] = n;
    } else if (f in strs) {
      a[strs[f]] = v;
    } else {
      fail(`unknown flag ${f}`, 2);
    }
  }
  if (!a.model || !a.input) fail('--model and --input are required', 2);
  if (a.tower !== 'image' && a.tower !== 'text') fail('--tower must be image or text', 2);
  if (a.tower === 'text' && a.length < 1) fail('--length L (>= 1) is required for the text tower', 2);
  if (a.iters < 1) fail('--iters must be >= 1', 2);
  return a;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node from ${join(here, 'node_modules')} (run benchmarks/peers/run.sh, ` +
         `which installs it): ${e.message}`);
  }
  const options = {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  };
  const t0 = process.hrtime.bigint();
  let session;
  try {
    session = await ort.InferenceSession.create(a.model, options);
  } catch (e) {
    fail(`cannot create a session for ${a.model}: ${e.message}`);
  }
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;

  let raw;
  try {
    raw = readFileSync(a.input);
  } catch (e) {
    fail(`cannot read input file ${a.input}: ${e.message}`);
  }
  const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
  const inputName = session.inputNames[0];
  let tensor;
  let batch;
  if (a.tower === 'image') {
    const meta = session.inputMetadata?.[0];
    const n = meta && Array.isArray(meta.shape) && Number.isInteger(meta.shape[3]) ? meta.shape[3] : 224;
    const row = 3 * n * n;
    if (buf.byteLength % (row * 4) !== 0) fail(`${a.input}: ${buf.byteLength} bytes is not a whole number of [3, ${n}, ${n}] float32 images`);
    batch = buf.byteLength / (row * 4);
    tensor = new ort.Tensor('float32', new Float32Array(buf), [batch, 3, n, n]);
  } else {
    if (buf.byteLength % (a.length * 8) !== 0) fail(`${a.input}: ${buf.byteLength} bytes is not a whole number of rows of ${a.length} int64 ids`);
    batch = buf.byteLength / (a.length * 8);
    tensor = new ort.Tensor('int64', new BigInt64Array(buf), [batch, a.length]);
  }
  const feeds = { [inputName]: tensor };
  const outName = session.outputNames[0];
  let out;
  for (let i = 0; i < a.warmup; ++i) out = await session.run(feeds);
  const ms = [];
  for (let i = 0; i < a.iters; ++i) {
    const s = process.hrtime.bigint();
    out = await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const total = ms.reduce((x, y) => x + y, 0);
  const sorted = [...ms].sort((x, y) => x - y);
  const result = out[outName];
  if (a.featuresOut) {
    try {
      writeFileSync(a.featuresOut, Buffer.from(result.data.buffer, result.data.byteOffset, result.data.byteLength));
    } catch (e) {
      fail(`cannot write features to ${a.featuresOut}: ${e.message}`);
    }
  }
  const ortVersion = require('onnxruntime-node/package.json').version;
  process.stdout.write(JSON.stringify({
    runner: 'ort', ort_version: ortVersion, model: a.model, tower: a.tower, batch, length: a.length || null,
    warmup: a.warmup, iters: a.iters, intra_op_threads: a.threads, inter_op_threads: 1,
    graph_optimization_level: 'all', load_s: loadS, ms, median_ms: sorted[Math.floor(sorted.length / 2)],
    items_per_s: (batch * a.iters) / (total / 1000), out_shape: result.dims,
  }) + '\n');
}

main().catch((e) => fail(e.stack || String(e)));
