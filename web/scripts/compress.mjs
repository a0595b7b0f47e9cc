// Writes .br and .gz beside each compressible file of the build, so the Python server sends
// precompressed bytes (no compression work per request). zlib's output is deterministic, so CI
// can compare a rebuild with the committed build byte for byte.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../src/dovecote/webapp/static', import.meta.url));
const COMPRESSIBLE = /\.(js|mjs|css|html|svg|json|txt|ttf|eot|map)$/;
const MIN_SIZE = 1024;

function* files(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

let count = 0;
for (const path of files(root)) {
  if (!COMPRESSIBLE.test(path)) continue;
  const raw = readFileSync(path);
  if (raw.length < MIN_SIZE) continue;
  const br = brotliCompressSync(raw, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
  });
  const gz = gzipSync(raw, { level: 9 });
  if (br.length < raw.length * 0.9) writeFileSync(`${path}.br`, br);
  if (gz.length < raw.length * 0.9) writeFileSync(`${path}.gz`, gz);
  count += 1;
}
console.log(`compressed ${count} files in ${root}`);
