// conn.toStream(): an SMB2 library written for net.Socket (4-byte length-prefixed frames) runs
// unchanged: frames written in arbitrary chunks arrive whole, in order, as frames.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { it } from 'node:test';

import { pattern } from '../support.js';
import { pair } from './helpers.js';

function frame(m: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + m.length);
  b.writeUInt32BE(m.length, 0);
  b.set(m, 4);
  return b;
}

it('carries length-prefixed frames both ways, split anywhere, with an echo server on the other end', async () => {
  const p = await pair();
  // the server side echoes through its own stream, as a net.Socket-based SMB2 server would
  const serverStream = p.accepted.toStream();
  serverStream.pipe(serverStream);
  const client = p.client.toStream();
  const msgs = [1, 64, 1364, 5000, 300_000].map((n, i) => pattern(n, i + 1));
  const wire = Buffer.concat(msgs.map(frame));
  // write in odd-sized chunks so frames and their headers are split
  for (let at = 0; at < wire.length; at += 777) client.write(wire.subarray(at, at + 777));
  const chunks: Buffer[] = [];
  let got = 0;
  client.on('data', (c: Buffer) => { chunks.push(c); got += c.length; });
  while (got < wire.length) await once(client, 'data');
  assert.ok(Buffer.concat(chunks).equals(wire), 'the echoed byte stream is the sent byte stream');
  assert.equal(p.accepted.stats().messagesReceived, msgs.length, 'one SMB Direct message per frame');
  client.end();
  await once(client, 'close');
  assert.equal(p.client.state, 'closed');
  await p.server.close();
});

it('refuses a frame longer than the peer accepts', async () => {
  const p = await pair();
  const s = p.client.toStream();
  const err = once(s, 'error');
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32BE(p.client.negotiated!.maxFragmentedSendSize + 1, 0);
  s.write(hdr);
  const [e] = await err;
  assert.equal((e as { code?: string }).code, 'ERR_SMBD_INVALID_ARGUMENT');
  await p.server.close();
});
