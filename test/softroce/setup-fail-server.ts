// The other process of hardening.test.ts: an SMB Direct server whose verbs provider cannot create
// a queue pair (maxInlineData past every device's limit: rdma_create_qp fails with EINVAL), with
// NO 'error' and NO 'connectionError' listener, as an application that never expected either.
//   node setup-fail-server.js <ip>
// Prints {"port"} when listening. Each stdin line "close" runs server.close() (clients may be
// connecting meanwhile) and prints {"closed":true} when it resolves; the process then has nothing
// left to do and must exit by itself with code 0. A connect request that crashes it (an 'error'
// event nobody listens to) ends it with code 1 and the stack on stderr instead.
import { createInterface } from 'node:readline';

import { createServer } from '../../src/index.js';
import { createVerbsProvider } from '../../src/providers/index.js';
import { resolveOptions } from '../../src/smbdirect/options.js';
import { verbsOptionsFor } from '../../src/smbdirect/server.js';

const ip = process.argv[2];
if (!ip) {
  console.error('usage: setup-fail-server <ip>');
  process.exit(2);
}
const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

const FAILING_INLINE = 1 << 20;
const server = createServer({ provider: createVerbsProvider({ ...verbsOptionsFor(resolveOptions({})), maxInlineData: FAILING_INLINE }) });
const { port } = await server.listen({ host: ip, port: 0 });
out({ port });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() !== 'close') return;
  void server.close().then(() => {
    out({ closed: true });
    lines.close(); // nothing keeps the process alive after this
  });
});
