// The other process in the cross-process tests: an rdma_cm server on <ip>.
//   node peer.js <ip> <mode>     mode: echo | exit-open
// Prints {"port"} when listening. Accepts one connection; its accept private
// data carries its DATA region (addr u64 LE, rkey u32, length u32), filled with
// pattern(DATA, 77). Echoes every message. On "exit" in exit-open mode it exits
// with everything still open (the kernel must clean up). On DISCONNECTED it
// answers, closes everything and prints {"closed":true}.
import { DATA, Events, SLAB, makeSide, pattern } from './rdma.js';

const [ip, mode = 'echo'] = process.argv.slice(2);
if (!ip) {
  console.error('usage: peer <ip> [echo|exit-open]');
  process.exit(2);
}

const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const RECVS = 16;
const RECV_SIZE = 4096;

const events = new Events();
const listener = events.channel.createId();
listener.bind(ip, 0);
listener.listen(1);
out({ port: listener.localAddress!.port });

const req = await events.next(listener, ['CONNECT_REQUEST'], 60_000);
const id = req.id!;
const side = makeSide(id);
side.bytes.set(pattern(DATA, 77), 0);
const slot = (i: number) => SLAB - (i + 1) * RECV_SIZE;
for (let i = 0; i < RECVS; i++) side.qp.postRecv(i, { mr: side.mr, offset: slot(i), length: RECV_SIZE });
const pd = Buffer.alloc(16);
pd.writeBigUInt64LE(side.mr.addr, 0);
pd.writeUInt32LE(side.mr.rkey, 8);
pd.writeUInt32LE(DATA, 12);
id.accept({ privateData: pd, initiatorDepth: 4, responderResources: 4 });
await events.next(id, ['ESTABLISHED']);
out({ established: true });

let sendId = 1_000_000;
const ECHO = DATA; // echoes are sent from [DATA, DATA + 64 KiB)
side.wcs.onBatch = ((orig) => (count: number) => {
  orig(count);
  for (const wc of side.wcs.all.splice(0)) {
    if (wc.wrId >= RECVS) continue; // send completions
    if (wc.status !== 'success') continue; // flushed at disconnect
    const msg = side.bytes.subarray(slot(wc.wrId), slot(wc.wrId) + wc.byteLength);
    if (mode === 'exit-open' && Buffer.from(msg).toString() === 'exit') process.exit(0);
    side.bytes.copyWithin(ECHO, slot(wc.wrId), slot(wc.wrId) + wc.byteLength);
    side.qp.postRecv(wc.wrId, { mr: side.mr, offset: slot(wc.wrId), length: RECV_SIZE });
    side.qp.postSend(sendId++, { mr: side.mr, offset: ECHO, length: wc.byteLength });
  }
})(side.wcs.onBatch);

await events.next(id, ['DISCONNECTED'], 600_000);
id.disconnect();
id.close();
side.pd.close();
side.channel.close();
listener.close();
events.close();
out({ closed: true });
