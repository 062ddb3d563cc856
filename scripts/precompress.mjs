// Precompresses the site's text and wasm assets at build time: each file
// gets a .br (brotli, best) and a .gz (gzip, best) beside it, which the
// server sends to browsers that accept them.
// Usage: node precompress.mjs [--cache <dir>] <dir>...
// With a cache, a file compressed by an earlier build (same content) is
// copied from it instead of compressed again: the wallet's SDK and the
// pages' wasm modules that did not change.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const args = process.argv.slice(2);
let cache = null;
if (args[0] === "--cache") {
  cache = args[1];
  args.splice(0, 2);
  mkdirSync(cache, { recursive: true });
}
const worth = /\.(wasm|js|mjs|css|json|svg|txt|html)$/;
let before = 0;
let after = 0;
let reused = 0;
function compress(path, body) {
  const key = cache && join(cache, createHash("sha256").update(body).digest("hex"));
  if (key && existsSync(`${key}.br`) && existsSync(`${key}.gz`)) {
    copyFileSync(`${key}.br`, `${path}.br`);
    copyFileSync(`${key}.gz`, `${path}.gz`);
    const now = new Date();
    utimesSync(`${key}.br`, now, now);
    utimesSync(`${key}.gz`, now, now);
    reused += 1;
    return statSync(`${path}.br`).size;
  }
  const br = brotliCompressSync(body, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  });
  const gz = gzipSync(body, { level: 9 });
  writeFileSync(`${path}.br`, br);
  writeFileSync(`${path}.gz`, gz);
  if (key) {
    writeFileSync(`${key}.br`, br);
    writeFileSync(`${key}.gz`, gz);
  }
  return br.length;
}
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      walk(path);
    } else if (worth.test(name)) {
      const body = readFileSync(path);
      if (body.length < 512) continue;
      before += body.length;
      after += compress(path, body);
    }
  }
}
for (const dir of args) walk(dir);
// What no build used for two weeks goes.
if (cache) {
  const old = Date.now() - 14 * 24 * 3600 * 1000;
  for (const name of readdirSync(cache)) {
    const path = join(cache, name);
    if (statSync(path).mtimeMs < old) unlinkSync(path);
  }
}
console.error(`precompressed: ${(before / 1024).toFixed(0)} KiB → ${(after / 1024).toFixed(0)} KiB brotli (${reused} files from the cache)`);
