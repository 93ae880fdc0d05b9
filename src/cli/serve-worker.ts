// `smbdirect serve --workers N`: the module each createWorkerPool worker loads. A connection the
// pool's listener handed to this worker (rdma_migrate_id) becomes an SMB Direct acceptor here, and
// its completions and CM events are handled on this thread. Credits come from the parent through
// SMBDIRECT_SERVE_CREDITS (workers inherit the environment).
import type { RdmaEndpoint, WorkerContext } from '../providers/index.js';
import { SmbDirectConnection } from '../smbdirect/connection.js';
import { resolveOptions } from '../smbdirect/options.js';
import { describeError } from './args.js';
import { describeConnection, describeClose } from './describe.js';
import { benchBuffers, serveBench } from './protocol.js';

const credits = Number(process.env['SMBDIRECT_SERVE_CREDITS']) || undefined;
const options = resolveOptions({ credits });
const { source, sink } = benchBuffers();
let next = 0;

export default async function onConnection(ep: RdmaEndpoint, ctx: WorkerContext): Promise<void> {
  const conn = new SmbDirectConnection(ep, 'acceptor', options, 'verbs');
  conn.on('error', () => {}); // reported with 'close'
  try {
    await conn._startAcceptor();
  } catch (err) {
    console.log(`a connection failed to negotiate on worker ${ctx.index}: ${describeError(err)}`);
    return;
  }
  const id = `${ctx.index}.${++next}`;
  const started = Date.now();
  console.log(`connection ${id} (verbs, worker ${ctx.index}): ${describeConnection(conn)}`);
  serveBench(conn, source, sink);
  conn.on('close', (err?: Error) => console.log(`connection ${id} ${describeClose(conn, started, err)}`));
}
