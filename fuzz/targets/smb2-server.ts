// The SMB2 server engine (src/smb2/server.ts) fed request messages through `attach()`: the input is
// a sequence of messages, each a u16 length then its bytes, each awaited (the engine is async: a
// sync target would never run it and pile up its queues). The oracle: no exception escapes, every
// response is an SMB2 message with SERVER_TO_REDIR set (an unknown command answered
// STATUS_INVALID_PARAMETER), and the connection's opens are released.
import { smb2 } from '../../framing/index.js';
import { createServer } from '../../src/smb2/server.js';
import { FuzzFinding, check } from '../lib/oracle.js';

const server = createServer({ shares: [{ name: 'share', path: '/nonexistent' }], users: { alice: 'secret' }, guest: true });

export async function fuzz(data: Buffer): Promise<void> {
  const responses: Uint8Array[] = [];
  let closed = false;
  const conn = server.attach({ send: (m) => { responses.push(m); }, close: () => { closed = true; } });
  for (let at = 0; at + 2 <= data.length && !closed;) {
    const n = data.readUInt16LE(at);
    const m = data.subarray(at + 2, at + 2 + n);
    at += 2 + n;
    try {
      await conn.message(m);
    } catch (err) {
      throw new FuzzFinding(`the server threw on a request: ${(err as Error).stack}`, { cause: err });
    }
  }
  await conn.end();
  for (const r of responses) {
    let items: ReturnType<typeof smb2.splitSmb2Compound>;
    try {
      // a command the protocol does not have is answered (STATUS_INVALID_PARAMETER), with its number
      items = smb2.splitSmb2Compound(r, smb2.MAX_COMPOUND, true);
    } catch (err) {
      throw new FuzzFinding(`the server sent a response that is not SMB2: ${(err as Error).message}`);
    }
    for (const it of items) {
      check(it.header.flags & smb2.SMB2_FLAGS.SERVER_TO_REDIR, 'a response without SERVER_TO_REDIR');
      check(it.header.command <= smb2.LAST_COMMAND || it.header.status === smb2.STATUS_INVALID_PARAMETER,
        `an unknown command 0x${it.header.command.toString(16)} answered ${smb2.ntstatusName(it.header.status)}`);
    }
  }
}
