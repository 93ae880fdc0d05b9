#!/usr/bin/env node
// The `smbdirect` command (src/cli/main.ts, compiled to dist/ by `npm run build`, which
// `npm install` runs).
let main;
try {
  ({ main } = await import('../dist/src/cli/main.js'));
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  console.error('smbdirect: dist/ is not built; run `npm run build` (or `npm install`) in the package first');
  process.exit(1);
}
// exit explicitly: a command is done when main() returns (stdout and stderr are synchronous for
// files and pipes on Linux, so nothing printed is lost)
process.exit(await main(process.argv.slice(2)));
