// An SMB2-style echo server and client over SMB Direct, in one process on 127.0.0.1 with the
// software iWARP provider (no RDMA hardware needed). Run: node --import tsx examples/echo.ts
//
// 1. SMB2 ECHO as plain messages: the client sends a 64-byte SMB2 header, the server answers.
// 2. SMB2 READ over an RDMA channel: the client registers a buffer and sends its descriptors in a
//    READ request; the server RDMA-writes the "file" into it and answers with Send-with-Invalidate.
// 3. SMB2 WRITE over an RDMA channel: the server RDMA-reads the client's buffer.
// In your own code import from 'smbdirect' and 'smbdirect/framing' instead of the relative paths.
import { createHash } from 'node:crypto';

import {
  SMB2_CHANNEL_RDMA_V1_INVALIDATE, decodeSmb2ReadWriteChannel, encodeSmb2ReadWriteChannel,
} from '../framing/index.js';
import { type SmbDirectConnection, connect, createServer } from '../src/index.js';

const SMB2_ECHO = 0x000d;
const file = createHash('sha512').update('smbdirect').digest().toString('hex').repeat(4096); // 512 KiB

function smb2Header(command: number, response: boolean): Buffer {
  const h = Buffer.alloc(64 + 4);
  h.set([0xfe, 0x53, 0x4d, 0x42], 0);
  h.writeUInt16LE(64, 4);
  h.writeUInt16LE(command, 12);
  h.writeUInt32LE(response ? 1 : 0, 16); // Flags: SERVER_TO_REDIR
  h.writeUInt16LE(4, 64);                // ECHO StructureSize
  return h;
}

// ---- the server -------------------------------------------------------------------------------
const server = createServer({}, (conn: SmbDirectConnection) => {
  conn.on('message', async (pdu: Buffer) => {
    const command = pdu.readUInt16LE(12);
    if (command === SMB2_ECHO) { await conn.send(smb2Header(SMB2_ECHO, true)); return; }
    const req = decodeSmb2ReadWriteChannel(pdu); // READ or WRITE with an RDMA channel
    if (req.command === 'read') {
      const data = Buffer.from(file).subarray(Number(req.fileOffset), Number(req.fileOffset) + req.length);
      await conn.rdmaWrite(req.descriptors, data);
      // the response follows the data; it invalidates the client's token (dialect 3.02+)
      await conn.send(smb2Header(0x0008, true), { invalidate: req.descriptors[0]!.token });
    } else {
      const into = Buffer.alloc(req.remainingBytes);
      await conn.rdmaRead(req.descriptors, into);
      console.log(`server: WRITE of ${into.length} bytes by RDMA read, sha256 ${createHash('sha256').update(into).digest('hex').slice(0, 16)}`);
      await conn.send(smb2Header(0x0009, true));
    }
  });
  conn.on('error', (err) => console.error('server connection error:', err.message));
});
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
console.log(`server: listening on 127.0.0.1:${port} (${server.provider.name})`);

// ---- the client -------------------------------------------------------------------------------
const conn = await connect({ host: '127.0.0.1', port });
console.log('client: negotiated', conn.negotiated);
const next = () => new Promise<Buffer>((resolve) => conn.once('message', resolve));

// 1. ECHO
let t0 = performance.now();
let reply = next();
await conn.send(smb2Header(SMB2_ECHO, false));
console.log(`client: ECHO answered (command 0x${(await reply).readUInt16LE(12).toString(16)}) in ${(performance.now() - t0).toFixed(2)} ms`);

// 2. READ 512 KiB into two buffers (two descriptors)
const bufs = [Buffer.alloc(200_000), Buffer.alloc(file.length - 200_000)];
const reg = conn.registerBuffer(bufs, 'write');
t0 = performance.now();
reply = next();
await conn.send(encodeSmb2ReadWriteChannel({ command: 'read', channel: SMB2_CHANNEL_RDMA_V1_INVALIDATE, length: file.length, descriptors: reg.descriptors }));
await reply;
const same = Buffer.concat(bufs).toString() === file;
console.log(`client: READ of ${file.length} bytes placed by RDMA write in ${(performance.now() - t0).toFixed(2)} ms; content ${same ? 'matches' : 'DIFFERS'}; token invalidated by the server: ${reg.invalidated}`);
reg.release();

// 3. WRITE 1 MiB: the server reads it
const out = Buffer.alloc(1 << 20, 7);
const wreg = conn.registerBuffer(out, 'read');
reply = next();
await conn.send(encodeSmb2ReadWriteChannel({ command: 'write', channel: SMB2_CHANNEL_RDMA_V1_INVALIDATE, length: 0, remainingBytes: out.length, descriptors: wreg.descriptors }));
await reply;
wreg.release();
console.log(`client: WRITE done, expected sha256 ${createHash('sha256').update(out).digest('hex').slice(0, 16)}`);

const s = conn.stats();
console.log(`client: ${s.messagesSent} messages sent, ${s.fragmentsSent} fragments, ${s.emptySends} empty, credits ${s.sendCredits}/${s.receiveCredits}`);
await conn.close();
await server.close();
console.log('closed');
if (!same) process.exit(1);
