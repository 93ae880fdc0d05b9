// docs/errors.md documents every error family's codes, exactly: framing (framing/errors.ts), the
// connection (src/smbdirect/errors.ts) and the providers (src/providers/errors.ts); and every code
// the source throws is in its family's registry.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../framing/index.js';
import { PROVIDER_ERROR_CODES } from '../src/providers/index.js';
import { CONNECTION_ERROR_CODES } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');

/** The codes in the tables of the section that starts at `heading` (up to the next '## '). */
function documented(heading: string): string[] {
  const start = doc.indexOf(`\n${heading}`);
  assert.ok(start >= 0, `docs/errors.md has a section '${heading}'`);
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const codes = [...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]!);
  assert.equal(new Set(codes).size, codes.length, `${heading}: no code listed twice`);
  return codes.sort();
}

it('docs/errors.md documents exactly the framing codes in ERROR_CODES', () => {
  const first = doc.indexOf('\n## ');
  const codes = [...doc.slice(0, first).matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]!);
  assert.deepEqual(codes.sort(), Object.keys(ERROR_CODES).sort());
});

it('docs/errors.md documents exactly the connection codes in CONNECTION_ERROR_CODES', () => {
  assert.deepEqual(documented('## Connection errors'), Object.keys(CONNECTION_ERROR_CODES).sort());
});

it('docs/errors.md documents exactly the provider codes in PROVIDER_ERROR_CODES', () => {
  assert.deepEqual(documented('## Provider errors'), Object.keys(PROVIDER_ERROR_CODES).sort());
});

it('every ERR_ code in the source is registered in one family', () => {
  const known = new Set([...Object.keys(ERROR_CODES), ...Object.keys(CONNECTION_ERROR_CODES), ...Object.keys(PROVIDER_ERROR_CODES)]);
  const unknown: string[] = [];
  let seen = 0;
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        for (const m of readFileSync(join(root, rel), 'utf8').matchAll(/'(ERR_[A-Z0-9_]+)'/g)) {
          seen++;
          if (!known.has(m[1]!)) unknown.push(`${rel}: ${m[1]}`);
        }
      }
    }
  };
  for (const dir of ['framing', 'completion', 'src']) walk(dir);
  assert.ok(seen > 100, `the walk found the source's codes (${seen})`);
  assert.deepEqual(unknown, []);
});
