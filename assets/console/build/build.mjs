// Bundles entry.js into ../vendor/codemirror.js: one minified ES module,
// headed by the licence of every package that went into it. Deterministic:
// the same lock file gives the same bytes (.ci/run checks the committed file).

import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const here = path.dirname(new URL(import.meta.url).pathname);
const outfile = path.join(here, '..', 'vendor', 'codemirror.js');

const result = await build({
  entryPoints: [path.join(here, 'entry.js')],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  charset: 'utf8',
  legalComments: 'none',
  metafile: true,
  write: false,
  outfile,
});

// The packages bundled (node_modules/<name> or node_modules/@scope/<name>), with their versions.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (!match || packages.has(match[1])) continue;
  const dir = path.join(here, 'node_modules', match[1]);
  const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const licence = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  if (!licence) throw new Error(`${match[1]} has no licence file`);
  packages.set(match[1], { version, text: fs.readFileSync(path.join(dir, licence), 'utf8').trim() });
}

// Packages sharing a licence text are listed together above it.
const byText = new Map();
for (const name of [...packages.keys()].sort()) {
  const { version, text } = packages.get(name);
  byText.set(text, [...(byText.get(text) ?? []), `${name}@${version}`]);
}
const header = [
  '/*',
  ' * CodeMirror 6 for the tagsmith console, built by assets/console/build (npm run build).',
  ...[...byText].flatMap(([text, names]) => [' *', ` * ${names.join(', ')}:`, ' *', ...text.split('\n').map((l) => ` * ${l}`.trimEnd())]),
  ' */',
  '',
].join('\n');

fs.mkdirSync(path.dirname(outfile), { recursive: true });
fs.writeFileSync(outfile, header + result.outputFiles[0].text);
console.log(`${path.relative(process.cwd(), outfile)}: ${fs.statSync(outfile).size} bytes from ${packages.size} packages`);
