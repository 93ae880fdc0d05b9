#!/usr/bin/env node
// The `smbdirect` command (src/cli/main.ts, compiled to dist/ by `npm run build`).
import { main } from '../dist/src/cli/main.js';

// exit explicitly: a command is done when main() returns (stdout and stderr are synchronous for
// files and pipes on Linux, so nothing printed is lost)
process.exit(await main(process.argv.slice(2)));
