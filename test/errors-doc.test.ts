// The error table in docs/errors.md and the codes in framing/errors.ts must list the same codes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ERROR_CODES } from '../framing/index.js';
import { CONNECTION_ERROR_CODES } from '../src/index.js';

it('docs/errors.md documents exactly the codes in ERROR_CODES', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8').split('## Connection errors')[0]!;
  const documented = [...doc.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
  assert.equal(new Set(documented).size, documented.length, 'no code listed twice');
});

it('docs/errors.md documents exactly the connection codes in CONNECTION_ERROR_CODES', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8').split('## Connection errors')[1] ?? '';
  const documented = [...doc.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...documented].sort(), Object.keys(CONNECTION_ERROR_CODES).sort());
  assert.equal(new Set(documented).size, documented.length, 'no code listed twice');
});
