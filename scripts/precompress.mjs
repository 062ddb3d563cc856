// Precompresses the site's text and wasm assets at build time: each file
// gets a .br (brotli, best) and a .gz (gzip, best) beside it, which the
// server sends to browsers that accept them. Usage: node precompress.mjs <dir>...
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const worth = /\.(wasm|js|mjs|css|json|svg|txt|html)$/;
let before = 0;
let after = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      walk(path);
    } else if (worth.test(name)) {
      const body = readFileSync(path);
      if (body.length < 512) continue;
      const br = brotliCompressSync(body, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
          [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
        },
      });
      writeFileSync(`${path}.br`, br);
      writeFileSync(`${path}.gz`, gzipSync(body, { level: 9 }));
      before += body.length;
      after += br.length;
    }
  }
}
for (const dir of process.argv.slice(2)) walk(dir);
console.error(`precompressed: ${(before / 1024).toFixed(0)} KiB → ${(after / 1024).toFixed(0)} KiB brotli`);
