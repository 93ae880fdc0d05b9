// The SMB2/3 server (`smbdirect/smb2` createServer, DESIGN.md's settled names) on direct TCP and
// on SMB Direct: this module is the connection and session layer (NEGOTIATE, SESSION_SETUP with
// NTLMv2, signing, encryption, credits, compounds, async requests and CANCEL, trees, IOCTLs of the
// session); the file commands are file-ops.ts's. docs/smb2/README.md lists what is built. A
// malformed request gets the status its decoder names; the connection keeps serving.
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { EventEmitter } from 'node:events';
import { type Server as NetServer, type Socket, createServer as createTcpServer } from 'node:net';
import { debuglog } from 'node:util';

import { SmbDirectProtocolError } from '../../framing/errors.js';
import { LAST_COMMAND, MAX_COMPOUND, SMB2_COMMAND, SMB2_FLAGS, type Smb2Header, splitSmb2Compound } from '../../framing/smb2/header.js';
import {
  SMB2_DIALECT, SMB2_GLOBAL_CAP, SMB2_NEGOTIATE_SIGNING_ENABLED, SMB2_NEGOTIATE_SIGNING_REQUIRED, SMB2_PREAUTH_INTEGRITY_SHA512,
  SMB2_CIPHER, SMB2_SIGNING, chooseSmb2Dialect, decodeSmb2NegotiateRequest, encodeSmb2NegotiateResponse, encryptionContext, preauthContext, signingContext,
} from '../../framing/smb2/negotiate.js';
import {
  MSV_AV, NTLMSSP, decodeNtlmAuthenticate, decodeNtlmNegotiate, encodeNtlmChallenge, utf16le,
} from '../../framing/smb2/ntlmssp.js';
import {
  STATUS_ACCESS_DENIED, STATUS_BAD_NETWORK_NAME, STATUS_CANCELLED, STATUS_FS_DRIVER_REQUIRED, STATUS_PENDING, STATUS_RANGE_NOT_LOCKED, STATUS_INSUFFICIENT_RESOURCES, STATUS_INTERNAL_ERROR, STATUS_INVALID_PARAMETER, STATUS_LOGON_FAILURE, STATUS_MORE_PROCESSING_REQUIRED,
  STATUS_NETWORK_NAME_DELETED, STATUS_NOT_SUPPORTED, STATUS_OBJECT_NAME_NOT_FOUND, STATUS_SHARING_VIOLATION, STATUS_SUCCESS, STATUS_USER_SESSION_DELETED, ntstatusName,
} from '../../framing/smb2/ntstatus.js';
import { SMB2_SESSION_FLAG, decodeSmb2SessionSetupRequest, encodeSmb2ErrorResponse, encodeSmb2SessionSetupResponse } from '../../framing/smb2/session.js';
import { NEG_STATE, OID_NTLMSSP, SPNEGO_HINT_IGNORE, decodeSpnego, encodeSpnegoInit, encodeSpnegoResp } from '../../framing/smb2/spnego.js';
import {
  FSCTL, NETWORK_INTERFACE_CAP, decodeSmb2IoctlRequest, decodeValidateNegotiateInfo, encodeNetworkInterfaceInfo, encodeSmb2IoctlResponse,
  encodeValidateNegotiateResponse,
} from '../../framing/smb2/ioctl.js';
import { SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB, SMB2_SHARE_TYPE, decodeSmb2CloseRequest, decodeSmb2FlushRequest, decodeSmb2Empty, encodeSmb2CloseResponse, decodeSmb2TreeConnectRequest, encodeSmb2Empty, encodeSmb2TreeConnectResponse, shareNameOf } from '../../framing/smb2/tree.js';
import { encodeSmb2CreateResponse } from '../../framing/smb2/create.js';
import {
  encodeSmb2OutputResponse, encodeSmb2ReadResponse, encodeSmb2SetInfoResponse, encodeSmb2WriteResponse,
} from '../../framing/smb2/file.js';
import { frameSmb2, Smb2StreamFramer } from '../providers/stream.js';
import { Smb2Error } from './errors.js';
import { type FileCounters, FileOps, type Placement, type ShareRef, channelInvalidateToken, shareRef } from './file-ops.js';
import { MetaStore } from './fs-backend.js';
import { OpenTable } from './share-modes.js';
import { CreditWindow } from './credit-window.js';
import { type Token, tokenFor } from './security.js';
import { type LockWaiter, LockTable } from './byte-locks.js';
import { decodeSmb2CancelRequest, encodeSmb2LockResponse } from '../../framing/smb2/lock.js';
import { SMB2_NOTIFICATION_MESSAGE_ID, decodeSmb2OplockBreak, encodeSmb2OplockBreak } from '../../framing/smb2/oplock.js';
import { OplockBreakPending } from './oplocks.js';
import type { Smb2FileId } from '../../framing/smb2/tree.js';
import { type ServerOptions as SmbDirectServerOptions, createServer as createSmbDirectServer, type SmbDirectServer } from '../smbdirect/server.js';
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { exportedSessionKey, fileTimeNow, ntHash, ntlmsspSignature, verifyNtlmv2 } from './auth/ntlm.js';
import { PreauthIntegrity } from './preauth.js';
import { signMessage, signingKey, verifySignature } from './signing.js';
import { SessionCipher, chooseCipher } from './encryption.js';
import { decodeSmb2TransformHeader, isSmb2Transform } from '../../framing/smb2/transform.js';

const debug = debuglog('smbdirect_smb2');

/** The commands on a file of a share (file-ops.ts). */
const FILE_COMMANDS = new Set<number>([
  SMB2_COMMAND.CREATE, SMB2_COMMAND.CLOSE, SMB2_COMMAND.READ, SMB2_COMMAND.WRITE, SMB2_COMMAND.FLUSH, SMB2_COMMAND.QUERY_DIRECTORY,
  SMB2_COMMAND.QUERY_INFO, SMB2_COMMAND.SET_INFO, SMB2_COMMAND.LOCK, SMB2_COMMAND.OPLOCK_BREAK,
]);

/** FSCTLs of the connection or session, not of a file (#ioctl); the others go to the file (FileOps.fsctl). */
const SESSION_FSCTLS = new Set<number>([FSCTL.VALIDATE_NEGOTIATE_INFO, FSCTL.QUERY_NETWORK_INTERFACE_INFO, FSCTL.DFS_GET_REFERRALS, FSCTL.DFS_GET_REFERRALS_EX]);

interface ChainCtx {
  sessionId: bigint; treeId: number; failed: number | undefined;
  /** Whether the message is one request (only then may a request go async: a blocking LOCK). */
  single: boolean;
  /** Whether the request being served is the last of its message. */
  last: boolean;
  /** Requests of this message that went async: their final responses wait for the interim one. */
  wentAsync: AsyncOp[];
}

/** A request answered STATUS_PENDING whose final response comes later ([MS-SMB2] 3.3.4.2). */
interface AsyncOp {
  asyncId: bigint;
  /** The request's header (MessageId, session, signing). */
  h: Smb2Header;
  waiter?: LockWaiter;
  /** A CREATE waiting for oplock breaks: run again (`req`) once `wait` settles. */
  resume?: { wait: Promise<void>; req: Uint8Array };
  /** The interim response has gone out (the final one may follow). */
  interimSent: boolean;
  /** A final status that came before the interim response went out. */
  early?: number;
}

/** Requests one connection may have waiting at once (blocking LOCKs): beyond it a blocking lock
 * fails at once (STATUS_LOCK_NOT_GRANTED). A bound on what a peer makes us keep. */
export const MAX_ASYNC_PER_CONNECTION = 256;
/** CANCELs remembered for requests not seen yet (a CANCEL may overtake its request's processing). */
const EARLY_CANCELS = 64;

const isError = (status: number) => (status >>> 30) === 3;
/** The NTSTATUS of an encoded response. */
const statusOf = (resp: Uint8Array) => new DataView(resp.buffer, resp.byteOffset).getUint32(8, true);

const COMMAND_NAMES: Readonly<Record<number, string>> = Object.freeze(Object.fromEntries(Object.entries(SMB2_COMMAND).map(([k, v]) => [v, k])));

export interface Smb2Share {
  name: string; path: string; readOnly?: boolean;
  /** Requests on this share must be encrypted (SMB2_SHAREFLAG_ENCRYPT_DATA). Default false. */
  encryptData?: boolean;
}

/** SMB2_SHAREFLAG_ENCRYPT_DATA (2.2.10). */
const SHAREFLAG_ENCRYPT_DATA = 0x00008000;

export interface Smb2ServerOptions {
  shares?: readonly Smb2Share[];
  /** User name (case-insensitive) -> password, or its NT hash (16 bytes, or 32 hex digits). */
  users?: Readonly<Record<string, string | { ntHash: Uint8Array | string }>>;
  /** Anonymous and unknown users get a guest session (no signing). Default false. */
  guest?: boolean;
  /** Grant oplocks (BATCH, EXCLUSIVE, LEVEL_II) when asked. Default false: opens get none, as
   * before, until the leases issue proves them with the kernel's cifs client (which keeps
   * byte-range locks to itself under an oplock). */
  oplocks?: boolean;
  /** How long a CREATE waits for an oplock holder to acknowledge its break before going on
   * (default 35 000 ms, as Windows). */
  oplockBreakTimeoutMs?: number;
  /** Require signed requests once a session is set up. Default false. */
  signingRequired?: boolean;
  /** SMB3 encryption (AES-128/256-GCM/CCM): 'off' offers none; 'on' (default) offers it to clients
   * that want it; 'required' sets every session's ENCRYPT_DATA flag and refuses unencrypted
   * requests (and sessions that cannot encrypt: guests, clients without a common cipher). */
  encryption?: 'off' | 'on' | 'required';
  /** Dialects offered, highest wins (default 3.1.1, 3.0.2, 3.0). */
  dialects?: readonly number[];
  /** The NetBIOS name and domain in the NTLM CHALLENGE (default SMBDIRECT / WORKGROUP). */
  serverName?: string;
  domain?: string;
}

export interface Smb2ListenOptions {
  /** 'tcp': direct TCP (RFC 1002 framing); 'rdma': SMB Direct on `provider` (default: the best there is). */
  transport: 'tcp' | 'rdma';
  host?: string;
  port?: number;
  provider?: SmbDirectServerOptions['provider'];
}

const MAX_TRANSACT = 8 * 1024 * 1024;
/** READ/WRITE requests one connection has in progress at once (more wait their turn, within the
 * credits the client holds). */
export const MAX_IO_IN_FLIGHT = 16;

/** The CreditCharge a READ or WRITE must carry for its payload: one credit per 64 KiB (3.3.5.2.5;
 * the other multi-credit commands are not checked: their buffers are small and bounded here). */
function ioCharge(req: Uint8Array, command: number): number {
  if ((command !== SMB2_COMMAND.READ && command !== SMB2_COMMAND.WRITE) || req.length < 72) return 0;
  const length = req[68]! | (req[69]! << 8) | (req[70]! << 16) | (req[71]! * 2 ** 24);
  return Math.ceil(length / 65536);
}

/** The command of a message that is one request (NextCommand 0), read from its header without
 * decoding it; undefined for a compound or a message too short for a header. */
function loneCommand(pdu: Uint8Array): number | undefined {
  if (pdu.length < 64) return undefined;
  const next = pdu[20]! | (pdu[21]! << 8) | (pdu[22]! << 16) | (pdu[23]! << 24);
  return next === 0 ? pdu[12]! | (pdu[13]! << 8) : undefined;
}

/** A counting semaphore: take() waits for a free slot, give() frees one (to the longest waiter). */
class Slots {
  #free: number;
  readonly #waiters: Array<() => void> = [];
  constructor(n: number) { this.#free = n; }
  async take(): Promise<void> {
    if (this.#free > 0) { this.#free--; return; }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  give(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}
const IPC = 'IPC$';
/** Sessions one connection may hold (set up or in progress): a bound on what a peer makes us keep. */
export const MAX_SESSIONS_PER_CONNECTION = 64;

interface Session {
  id: bigint;
  state: 'in-progress' | 'valid';
  preauth?: PreauthIntegrity;
  challenge?: { serverChallenge: Uint8Array; spnego: boolean; mechTypesDer?: Uint8Array };
  user?: string;
  guest: boolean;
  /** An anonymous (NULL) session: no key; it may connect IPC$ only (disk shares too with `guest`). */
  anonymous?: boolean;
  /** Who the session is for access checks against stored security descriptors (made on first use). */
  token?: Token;
  signingKey?: Uint8Array;
  /** Its encryption keys (when the connection negotiated a cipher and the user authenticated). */
  cipher?: SessionCipher;
  /** Session.EncryptData: its requests must be encrypted. */
  encryptData: boolean;
  trees: Map<number, { share: string; type: number; def?: Smb2Share }>;
}

/** One client connection, over whatever carries its messages. */
class ServerConnection {
  readonly #server: Smb2Server;
  readonly #send: (message: Uint8Array, invalidate?: number) => void;
  readonly #close: () => void;
  readonly #placement?: Placement;
  readonly #files: FileOps;
  #dialect = 0;
  #signingAlgorithm: number = SMB2_SIGNING.AES_CMAC;
  /** Connection.CipherId: 0 when the connection cannot encrypt. */
  #cipher = 0;
  /** The capabilities of the NEGOTIATE response (VALIDATE_NEGOTIATE_INFO repeats them). */
  #capabilities = SMB2_GLOBAL_CAP.LARGE_MTU;
  #preauth?: PreauthIntegrity;
  /** What the client's NEGOTIATE said, for FSCTL_VALIDATE_NEGOTIATE_INFO. */
  #clientNegotiate?: { capabilities: number; guid: Uint8Array; securityMode: number; dialects: number[] };
  readonly #sessions = new Map<bigint, Session>();
  #nextTree = 1;

  /** MaxReadSize / MaxWriteSize: 8 MiB, or less over SMB Direct (its negotiated MaxReadWriteSize). */
  readonly #maxIo: number;

  constructor(server: Smb2Server, send: (m: Uint8Array, invalidate?: number) => void, close: () => void, placement?: Placement, maxIo = MAX_TRANSACT) {
    this.#server = server;
    this.#maxIo = Math.min(MAX_TRANSACT, maxIo);
    this.#send = send;
    this.#close = close;
    this.#placement = placement;
    this.#files = new FileOps(server.fileCounters, server.meta, server.openTable, server.lockTable);
    this.#files.grantOplocks = server.options.oplocks === true;
    if (server.options.oplockBreakTimeoutMs !== undefined) this.#files.oplockBreakTimeoutMs = server.options.oplockBreakTimeoutMs;
    this.#files.onOplockBreak = (fileId, sessionId, level) => this.#sendOplockBreak(fileId, sessionId, level);
  }

  /** An oplock break notification (2.2.23.1, 3.3.4.6): unsolicited, MessageId all ones, no
   * session in its header; encrypted when its session requires encryption. */
  #sendOplockBreak(fileId: Smb2FileId, sessionId: bigint, level: number): void {
    if (this.#ended) return;
    const m = encodeSmb2OplockBreak({ header: { messageId: SMB2_NOTIFICATION_MESSAGE_ID, credits: 0 }, oplockLevel: level, fileId }, true);
    const s = this.#sessions.get(sessionId);
    debug('oplock break of session 0x%s\'s open %s to level %d', sessionId.toString(16), fileId.volatile, level);
    this.#send(s?.encryptData && s.cipher ? s.cipher.encrypt(m, s.id) : m);
  }



  /**
   * One message (a compound chain). Nothing a peer sends escapes this call. A message that is one
   * READ or WRITE runs once every earlier other message is done, next to other such I/O (at most
   * MAX_IO_IN_FLIGHT per connection: a client pipelines its reads and writes, and their RDMA
   * transfers and file I/O overlap); any other message runs alone, after everything before it,
   * I/O included. So state that only other commands change (sessions, trees, opens, a chain's
   * related file) never changes under a running request, and responses to I/O may leave in any
   * order, as [MS-SMB2] allows (3.3.4.1: a client matches them by MessageId).
   */
  onMessage(message: Uint8Array): Promise<void> {
    let pdu = message;
    let sealedFor: Session | undefined;
    if (isSmb2Transform(message)) {
      // 3.3.5.2.1.1: a message that does not decrypt (unknown session, no keys, a bad tag) ends
      // the connection
      try {
        const t = decodeSmb2TransformHeader(message);
        sealedFor = this.#sessions.get(t.sessionId);
        if (!sealedFor?.cipher) throw new Error(`no session 0x${t.sessionId.toString(16)} with encryption keys`);
        pdu = sealedFor.cipher.decrypt(t);
      } catch (err) {
        debug('an encrypted message that does not decrypt: %s; disconnecting', (err as Error).message);
        this.#close();
        return Promise.resolve();
      }
    }
    const command = loneCommand(pdu);
    // a lone READ or WRITE: the requests that may run side by side
    const single = command === SMB2_COMMAND.READ || command === SMB2_COMMAND.WRITE;
    if (command === SMB2_COMMAND.OPLOCK_BREAK) {
      // an acknowledgment goes at once: a CREATE of this connection may be waiting for it
      return this.#process(pdu, sealedFor).catch((err: unknown) => {
        debug('internal error: %s', (err as Error).stack);
        this.#close();
      });
    }
    if (command === SMB2_COMMAND.CANCEL) {
      // CANCEL has no response and must not wait behind the request it cancels
      this.#cancel(pdu);
      return Promise.resolve();
    }
    const done = (single ? this.#othersDone : this.#allDone).then(async () => {
      if (!single) return this.#process(pdu, sealedFor);
      await this.#ioSlots.take();
      const io = this.#server.io;
      io.peakInFlight = Math.max(io.peakInFlight, ++io.inFlight);
      try {
        await this.#process(pdu, sealedFor);
      } finally {
        io.inFlight--;
        this.#ioSlots.give();
      }
    }).catch((err: unknown) => {
      debug('internal error: %s', (err as Error).stack);
      this.#close();
    });
    this.#allDone = Promise.all([this.#allDone, done]).then(() => {});
    if (!single) this.#othersDone = done;
    return done;
  }

  /** Settles once every message received so far is answered. */
  #allDone: Promise<void> = Promise.resolve();
  /** Settles once every message received so far that is not a lone READ/WRITE is answered. */
  #othersDone: Promise<void> = Promise.resolve();
  readonly #ioSlots = new Slots(MAX_IO_IN_FLIGHT);

  /** Serves one message; `sealedFor` is the session it came encrypted for (its responses go
   * encrypted, unsigned). */
  async #process(pdu: Uint8Array, sealedFor?: Session): Promise<void> {
    let items: ReturnType<typeof splitSmb2Compound>;
    try {
      items = splitSmb2Compound(pdu, MAX_COMPOUND, true);
    } catch (err) {
      debug('unparsable message (%d bytes): %s', pdu.length, (err as Error).message);
      this.#close(); // not SMB2 at all: 3.3.5.2 disconnects
      return;
    }
    const responses: Uint8Array[] = [];
    let invalidate: number | undefined;
    // a related chain (cifs: CREATE + QUERY_INFO + CLOSE) carries on the previous request's
    // session, tree and file; a CREATE that fails ends the rest of it with its status (Windows and
    // Samba; the failure of another command does not: smbtorture's compound.related6)
    const chainCtx: ChainCtx = { sessionId: 0n, treeId: 0, failed: undefined, single: items.length === 1, last: false, wentAsync: [] };
    this.#files.relatedFileId = undefined;
    for (const [index, item] of items.entries()) {
      chainCtx.last = index === items.length - 1;
      const req = pdu.subarray(item.offset, item.offset + item.length);
      let h = item.header;
      if (!this.#window.consume(h.messageId, h.creditCharge)) {
        // 3.3.5.2.3: a MessageId the server did not grant (or one used twice) ends the connection
        debug('MessageId %s (CreditCharge %d) is outside the command sequence window: disconnecting', h.messageId, h.creditCharge);
        this.#close();
        return;
      }
      const related = (h.flags & SMB2_FLAGS.RELATED_OPERATIONS) !== 0 && responses.length > 0;
      // 3.3.5.2.7.2: a chain cannot start related
      const badStart = (h.flags & SMB2_FLAGS.RELATED_OPERATIONS) !== 0 && responses.length === 0;
      if (related) h = { ...h, sessionId: chainCtx.sessionId, treeId: chainCtx.treeId };
      if (sealedFor) this.#sealed.add(h);
      if (!related) {
        this.#files.relatedFileId = undefined;
        chainCtx.failed = undefined;
      }
      let resp: Uint8Array;
      // a V1_INVALIDATE READ/WRITE gets its token invalidated by whatever response it gets
      if (this.#placement) invalidate = channelInvalidateToken(req, h.command) ?? invalidate;
      if (related && chainCtx.failed !== undefined) resp = this.#error(h, chainCtx.failed);
      else if (related && !this.#sessions.has(h.sessionId) && h.command !== SMB2_COMMAND.SESSION_SETUP && h.command !== SMB2_COMMAND.ECHO) {
        // 3.3.5.2.7.2: the request before it named no session there is: nothing to relate to
        resp = this.#error(h, STATUS_INVALID_PARAMETER);
      }
      else if (sealedFor && h.sessionId !== sealedFor.id && h.command !== SMB2_COMMAND.NEGOTIATE) {
        // a request encrypted with one session's key acting for another
        resp = this.#error(h, STATUS_ACCESS_DENIED);
      } else if (badStart) resp = this.#error(h, STATUS_INVALID_PARAMETER);
      else if (Math.max(1, h.creditCharge) < ioCharge(req, h.command)) {
        // 3.3.5.2.5: a READ or WRITE larger than its CreditCharge pays for (0 counts as 1)
        resp = this.#error(h, STATUS_INVALID_PARAMETER);
      } else {
        resp = await this.#answer(req, h, chainCtx);
      }
      if (resp.length === 0) return; // the connection is being closed
      const status = statusOf(resp);
      this.#server.count(h.command, status);
      if (isError(status) && (h.command === SMB2_COMMAND.CREATE || badStart)) chainCtx.failed = status;
      chainCtx.sessionId = h.sessionId;
      chainCtx.treeId = h.treeId;
      responses.push(resp);
    }
    const out = responses.length === 1 ? responses[0]! : this.#chain(responses);
    this.#send(sealedFor ? sealedFor.cipher!.encrypt(out, sealedFor.id) : out, invalidate);
    for (const op of chainCtx.wentAsync) {
      op.interimSent = true;
      if (op.early !== undefined) this.#finishAsync(op, op.early);
      else if (op.resume) void op.resume.wait.then(() => this.#resume(op));
    }
  }

  /** A request's response, its failure included (the status its error names). */
  async #answer(req: Uint8Array, h: Smb2Header, chainCtx: ChainCtx): Promise<Uint8Array> {
    try {
      return (await this.#handle(req, h, chainCtx)).resp;
    } catch (err) {
      const status = err instanceof Smb2Error ? err.status
        : err instanceof SmbDirectProtocolError && err.status !== undefined ? err.status : STATUS_INVALID_PARAMETER;
      if (!(err instanceof SmbDirectProtocolError) && !(err instanceof Smb2Error)) debug('internal error on command 0x%s: %s', h.command.toString(16), (err as Error).stack);
      else debug('command 0x%s: %s', h.command.toString(16), (err as Error).message);
      return this.#error(h, status);
    }
  }

  /** A CREATE that went async for oplock breaks, run again once they are done: after everything
   * received before it, as any other request (its final response carries its AsyncId, no credits). */
  #resume(op: AsyncOp): void {
    const task = this.#allDone.then(async () => {
      if (this.#ended || !this.#async.delete(op.asyncId)) return; // cancelled, or the connection ended
      const h = { ...op.h };
      this.#continuations.set(h, op.asyncId);
      if (this.#sealed.has(op.h)) this.#sealed.add(h);
      this.#files.relatedFileId = undefined;
      const resp = await this.#answer(op.resume!.req, h, { sessionId: h.sessionId, treeId: h.treeId, failed: undefined, single: true, last: true, wentAsync: [] });
      if (resp.length === 0 || this.#ended) return;
      this.#server.count(h.command, statusOf(resp));
      this.#send(this.#seal(h, resp));
    }).catch((err: unknown) => {
      debug('internal error: %s', (err as Error).stack);
      this.#close();
    });
    this.#allDone = Promise.all([this.#allDone, task]).then(() => {});
    this.#othersDone = task;
  }

  /** Requests run again after going async (#resume), with their AsyncId. */
  readonly #continuations = new WeakMap<Smb2Header, bigint>();

  /** Ends the connection's opens and waiting requests (its end). */
  async end(): Promise<void> {
    this.#ended = true;
    for (const id of this.#sessions.keys()) if (this.#server.sessions.get(id) === this) this.#server.sessions.delete(id);
    for (const op of this.#async.values()) if (op.waiter) this.#files.cancelLock(op.waiter);
    this.#async.clear();
    await this.#files.closeAll(() => true);
  }

  #ended = false;
  readonly #async = new Map<bigint, AsyncOp>();
  #nextAsyncId = 1n;
  /** MessageIds of CANCELs that found no async request (oldest first). */
  readonly #earlyCancels: bigint[] = [];

  /** Makes the request async: its interim response now (STATUS_PENDING with a new AsyncId and the
   * credits granted; 3.3.4.2), the final one from `#finishAsync`. */
  #goAsync(h: Smb2Header, chainCtx: ChainCtx, op: AsyncOp): Uint8Array {
    this.#async.set(op.asyncId, op);
    chainCtx.wentAsync.push(op);
    return this.#signed(h, encodeSmb2ErrorResponse({
      ...this.#header(h, STATUS_PENDING), command: h.command, flags: SMB2_FLAGS.ASYNC_COMMAND, asyncId: op.asyncId,
    }));
  }

  /** The final response of an async request (no credits: the interim response granted them). */
  #finishAsync(op: AsyncOp, status: number): void {
    if (!op.interimSent) { op.early ??= status; return; }
    if (!this.#async.delete(op.asyncId)) return;
    this.#server.count(op.h.command, status);
    if (this.#ended) return;
    const header = { ...this.#header(op.h, status, { credits: 0 }), flags: SMB2_FLAGS.ASYNC_COMMAND, asyncId: op.asyncId };
    const resp = status === STATUS_SUCCESS ? encodeSmb2LockResponse(header) : encodeSmb2ErrorResponse({ ...header, command: op.h.command });
    this.#send(this.#seal(op.h, this.#signed(op.h, resp)));
  }

  /** A response to a request that came encrypted, encrypted for its session (as it is otherwise);
   * a whole message's is sealed in #process, for the session it came encrypted for. */
  #seal(h: Smb2Header, resp: Uint8Array): Uint8Array {
    const s = this.#sealed.has(h) ? this.#sessions.get(h.sessionId) : undefined;
    return s?.cipher ? s.cipher.encrypt(resp, s.id) : resp;
  }

  /** CANCEL (3.3.5.16): of an async request by AsyncId, of one not async yet by MessageId. A
   * waiting LOCK ends with STATUS_CANCELLED; anything else runs to its end. */
  #cancel(pdu: Uint8Array): void {
    let h: Smb2Header;
    try {
      h = decodeSmb2CancelRequest(pdu);
    } catch (err) {
      debug('a malformed CANCEL: %s', (err as Error).message);
      return;
    }
    const async = (h.flags & SMB2_FLAGS.ASYNC_COMMAND) !== 0;
    const op = async ? this.#async.get(h.asyncId) : [...this.#async.values()].find((o) => o.h.messageId === h.messageId);
    if (!op) {
      if (!async) {
        this.#earlyCancels.push(h.messageId);
        if (this.#earlyCancels.length > EARLY_CANCELS) this.#earlyCancels.shift();
      }
      return;
    }
    if (op.h.sessionId !== h.sessionId) return;
    if (op.waiter && this.#files.cancelLock(op.waiter)) this.#finishAsync(op, STATUS_CANCELLED);
    else if (op.resume && op.interimSent) this.#finishAsync(op, STATUS_CANCELLED); // a CREATE waiting for a break
  }

  /** The credits a request's response grants, decided once per request (a request whose first
   * response was dropped for an error response must not grant twice). */
  #credits(h: Smb2Header): number {
    let g = this.#granted.get(h);
    if (g === undefined) this.#granted.set(h, (g = this.#window.grant(h.credits)));
    return g;
  }

  readonly #window = new CreditWindow();
  readonly #granted = new WeakMap<Smb2Header, number>();

  #header(h: Smb2Header, status: number, extra: { sessionId?: bigint; treeId?: number; credits?: number } = {}) {
    const asyncId = this.#continuations.get(h);
    // the final response of a request that went async: its AsyncId, no credits (the interim gave them)
    if (asyncId !== undefined) return { status, messageId: h.messageId, credits: 0, creditCharge: h.creditCharge, sessionId: h.sessionId, flags: SMB2_FLAGS.ASYNC_COMMAND, asyncId };
    return {
      status, messageId: h.messageId, credits: extra.credits ?? this.#credits(h), creditCharge: h.creditCharge, sessionId: extra.sessionId ?? h.sessionId,
      treeId: extra.treeId ?? h.treeId, processId: h.processId,
    };
  }

  #error(h: Smb2Header, status: number): Uint8Array {
    return this.#signed(h, encodeSmb2ErrorResponse({ ...this.#header(h, status), command: h.command }));
  }

  /** Signs a response when its request was signed or the session requires it (and remembers the
   * key: in a compound the signature covers the padding `#chain` adds). */
  #signed(h: Smb2Header, resp: Uint8Array): Uint8Array {
    if (this.#sealed.has(h)) return resp; // its message goes encrypted: the AEAD's tag is its proof
    const s = this.#sessions.get(h.sessionId);
    if (s?.signingKey && s.state === 'valid' && ((h.flags & SMB2_FLAGS.SIGNED) || this.#server.options.signingRequired)) {
      signMessage(s.signingKey, this.#signingAlgorithm, resp);
      this.#signedWith.set(resp, s.signingKey);
    }
    return resp;
  }

  readonly #signedWith = new WeakMap<Uint8Array, Uint8Array>();
  /** Requests that came encrypted (their responses go encrypted, not signed). */
  readonly #sealed = new WeakSet<Smb2Header>();

  /**
   * A compound response: each response padded to 8 bytes, the last too (as Windows does:
   * smbtorture's compound.padding), NextCommand set, and the signed ones signed again over their
   * padded length ([MS-SMB2] 3.3.4.1.1: the signature of a response in a chain covers its padding).
   */
  #chain(responses: Uint8Array[]): Uint8Array {
    const sizes = responses.map((r) => (r.length + 7) & ~7);
    const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    responses.forEach((r, i) => {
      out.set(r, at);
      if (i < responses.length - 1) new DataView(out.buffer).setUint32(at + 20, sizes[i]!, true);
      const key = this.#signedWith.get(r);
      if (key) signMessage(key, this.#signingAlgorithm, out.subarray(at, at + sizes[i]!));
      at += sizes[i]!;
    });
    return out;
  }

  async #handle(req: Uint8Array, h: Smb2Header, chainCtx: ChainCtx): Promise<{ resp: Uint8Array }> {
    const plain = (resp: Uint8Array) => ({ resp });
    if (h.command > LAST_COMMAND) return plain(this.#error(h, STATUS_INVALID_PARAMETER)); // 3.3.5.2.6
    if (h.command === SMB2_COMMAND.NEGOTIATE) return plain(this.#negotiate(req, h));
    if (this.#dialect === 0) return plain(this.#error(h, STATUS_INVALID_PARAMETER)); // nothing before NEGOTIATE
    if (h.command === SMB2_COMMAND.SESSION_SETUP) return plain(this.#sessionSetup(req, h));
    if (h.command === SMB2_COMMAND.ECHO) {
      // ECHO needs no session (3.3.5.2.9): a client's keepalive
      decodeSmb2Empty(req, SMB2_COMMAND.ECHO, false);
      return plain(this.#signed(h, encodeSmb2Empty(SMB2_COMMAND.ECHO, this.#header(h, STATUS_SUCCESS), true)));
    }
    const s = this.#sessions.get(h.sessionId);
    if (s?.state !== 'valid') return plain(this.#error(h, STATUS_USER_SESSION_DELETED));
    const sealed = this.#sealed.has(h);
    if (!sealed && (s.encryptData || (s.trees.get(h.treeId)?.def?.encryptData && h.command !== SMB2_COMMAND.TREE_DISCONNECT))) {
      // 3.3.5.2.9, 3.3.5.2.11: a session or share that requires encryption refuses plain requests
      debug('session %s: an unencrypted request (command 0x%s) where encryption is required', h.sessionId, h.command.toString(16));
      return plain(this.#error(h, STATUS_ACCESS_DENIED));
    }
    if (!sealed && s.signingKey && (h.flags & SMB2_FLAGS.SIGNED) && !verifySignature(s.signingKey, this.#signingAlgorithm, req)) {
      debug('session %s: a request with a bad signature', h.sessionId);
      return plain(this.#error(h, STATUS_ACCESS_DENIED));
    }
    if (!sealed && this.#server.options.signingRequired && s.signingKey && !(h.flags & SMB2_FLAGS.SIGNED)) return plain(this.#error(h, STATUS_ACCESS_DENIED));
    if (h.command === SMB2_COMMAND.CHANGE_NOTIFY) {
      // not built: NOT_SUPPORTED; but a notify waits for a change, and a request that would wait
      // inside a compound, not last, fails STATUS_INTERNAL_ERROR (3.3.5.2.7, Windows and Samba)
      return plain(this.#error(h, chainCtx.last ? STATUS_NOT_SUPPORTED : STATUS_INTERNAL_ERROR));
    }
    if (FILE_COMMANDS.has(h.command) || (h.command === SMB2_COMMAND.IOCTL && !SESSION_FSCTLS.has(decodeSmb2IoctlRequest(req).ctlCode))) {
      return this.#fileCommand(req, h, s, chainCtx);
    }
    return plain(this.#sessionCommand(req, h, s));
  }

  #sessionCommand(req: Uint8Array, h: Smb2Header, s: Session): Uint8Array {
    switch (h.command) {
      case SMB2_COMMAND.LOGOFF:
        decodeSmb2Empty(req, SMB2_COMMAND.LOGOFF, false);
        {
          const resp = this.#signed(h, encodeSmb2Empty(SMB2_COMMAND.LOGOFF, this.#header(h, STATUS_SUCCESS), true));
          this.#dropSession(s.id);
          return resp;
        }
      case SMB2_COMMAND.ECHO:
        decodeSmb2Empty(req, SMB2_COMMAND.ECHO, false);
        return this.#signed(h, encodeSmb2Empty(SMB2_COMMAND.ECHO, this.#header(h, STATUS_SUCCESS), true));
      case SMB2_COMMAND.TREE_CONNECT:
        return this.#treeConnect(req, h, s);
      case SMB2_COMMAND.IOCTL:
        return this.#ioctl(req, h);
      case SMB2_COMMAND.TREE_DISCONNECT:
        decodeSmb2Empty(req, SMB2_COMMAND.TREE_DISCONNECT, false);
        if (!s.trees.delete(h.treeId)) return this.#error(h, STATUS_NETWORK_NAME_DELETED);
        void this.#files.closeAll((sid, tid) => sid === s.id && tid === h.treeId);
        return this.#signed(h, encodeSmb2Empty(SMB2_COMMAND.TREE_DISCONNECT, this.#header(h, STATUS_SUCCESS), true));
      default:
        debug('command 0x%s: not supported yet', h.command.toString(16));
        return this.#error(h, STATUS_NOT_SUPPORTED);
    }
  }

  async #fileCommand(req: Uint8Array, h: Smb2Header, s: Session, chainCtx: ChainCtx): Promise<{ resp: Uint8Array }> {
    const tree = s.trees.get(h.treeId);
    if (!tree) return { resp: this.#error(h, STATUS_NETWORK_NAME_DELETED) };
    if (!tree.def) {
      // IPC$: no named pipes yet (srvsvc, lsarpc): the pipe is not there
      return { resp: this.#error(h, h.command === SMB2_COMMAND.CREATE ? STATUS_OBJECT_NAME_NOT_FOUND : STATUS_NOT_SUPPORTED) };
    }
    const ref = await this.#server.shareRef(tree.def);
    const f = this.#files;
    const hdr = (status = STATUS_SUCCESS) => this.#header(h, status);
    const ok = (resp: Uint8Array) => ({ resp: this.#signed(h, resp) });
    switch (h.command) {
      case SMB2_COMMAND.CREATE: {
        s.token ??= tokenFor(this.#server.guid, s.user, s.guest);
        let c: Awaited<ReturnType<FileOps['create']>> | undefined;
        for (let tries = 0; !c; tries++) {
          try {
            c = await f.create(req, s.id, h.treeId, ref, s.token);
          } catch (err) {
            if (!(err instanceof OplockBreakPending)) throw err;
            // a lone CREATE waits async (its connection serves on: the holder may be on it); one
            // in a compound, or one run again, waits here (each wait bounded by the break deadline)
            if (chainCtx.single && !this.#continuations.has(h) && this.#async.size < MAX_ASYNC_PER_CONNECTION) {
              const op: AsyncOp = { asyncId: this.#nextAsyncId++, h, interimSent: false, resume: { wait: err.wait, req } };
              return { resp: this.#goAsync(h, chainCtx, op) };
            }
            if (tries >= 4) throw new Smb2Error(STATUS_SHARING_VIOLATION, 'oplocks granted again while this CREATE waited');
            await err.wait;
          }
        }
        f.relatedFileId = c.fileId;
        const st = c.st;
        return ok(encodeSmb2CreateResponse({
          header: hdr(), oplockLevel: c.oplockLevel ?? 0, createAction: c.action, creationTime: st.creationTime, lastAccessTime: st.lastAccessTime,
          lastWriteTime: st.lastWriteTime, changeTime: st.changeTime, allocationSize: st.allocationSize, endOfFile: st.endOfFile,
          fileAttributes: st.attributes, fileId: c.fileId, contexts: c.contexts,
        }));
      }
      case SMB2_COMMAND.CLOSE: {
        const r = decodeSmb2CloseRequest(req);
        const st = await f.close(r.fileId, s.id, h.treeId, (r.flags & SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB) !== 0);
        return ok(encodeSmb2CloseResponse({
          header: hdr(), attributes: st && { creationTime: st.creationTime, lastAccessTime: st.lastAccessTime, lastWriteTime: st.lastWriteTime,
            changeTime: st.changeTime, allocationSize: st.allocationSize, endOfFile: st.endOfFile, fileAttributes: st.attributes },
        }));
      }
      case SMB2_COMMAND.READ: {
        const r = await f.read(req, s.id, h.treeId, this.#maxIo, this.#placement);
        return ok(encodeSmb2ReadResponse({ header: hdr(), data: r.data, dataRemaining: r.placed ?? 0 }));
      }
      case SMB2_COMMAND.WRITE: {
        const r = await f.write(req, s.id, h.treeId, this.#maxIo, this.#placement);
        return ok(encodeSmb2WriteResponse({ header: hdr(), count: r.count }));
      }
      case SMB2_COMMAND.FLUSH: {
        const r = decodeSmb2FlushRequest(req);
        await f.flush(r.fileId, s.id, h.treeId);
        return ok(encodeSmb2Empty(SMB2_COMMAND.FLUSH, hdr(), true));
      }
      case SMB2_COMMAND.QUERY_DIRECTORY:
        return ok(encodeSmb2OutputResponse(SMB2_COMMAND.QUERY_DIRECTORY, { header: hdr(), output: await f.queryDirectory(req, s.id, h.treeId) }));
      case SMB2_COMMAND.QUERY_INFO: {
        const r = await f.queryInfo(req, s.id, h.treeId);
        if (r.errorData) return ok(encodeSmb2ErrorResponse({ ...hdr(r.status), command: h.command }, r.errorData));
        return ok(encodeSmb2OutputResponse(SMB2_COMMAND.QUERY_INFO, { header: hdr(r.status), output: r.output }));
      }
      case SMB2_COMMAND.SET_INFO:
        await f.setInfo(req, s.id, h.treeId);
        return ok(encodeSmb2SetInfoResponse(hdr()));
      case SMB2_COMMAND.IOCTL: {
        const r = decodeSmb2IoctlRequest(req);
        const output = await f.fsctl(r, s.id, h.treeId);
        return ok(encodeSmb2IoctlResponse({ header: hdr(), ctlCode: r.ctlCode, fileId: r.fileId, output }));
      }
      case SMB2_COMMAND.OPLOCK_BREAK: {
        const r = decodeSmb2OplockBreak(req, false);
        const level = f.acknowledgeOplockBreak(r.fileId, s.id, h.treeId, r.oplockLevel);
        return ok(encodeSmb2OplockBreak({ header: hdr(), oplockLevel: level, fileId: r.fileId }, true));
      }
      case SMB2_COMMAND.LOCK: {
        // a blocking lock that must wait goes async, in a message of its own only (compounds fail it)
        const canWait = chainCtx.single && this.#async.size < MAX_ASYNC_PER_CONNECTION;
        const op: AsyncOp = { asyncId: this.#nextAsyncId++, h, interimSent: false };
        const waiter = f.lock(req, s.id, h.treeId, canWait ? (granted) => this.#finishAsync(op, granted ? STATUS_SUCCESS : STATUS_RANGE_NOT_LOCKED) : undefined);
        if (!waiter) return ok(encodeSmb2LockResponse(hdr()));
        const early = this.#earlyCancels.indexOf(h.messageId);
        if (early >= 0) {
          this.#earlyCancels.splice(early, 1);
          f.cancelLock(waiter);
          return { resp: this.#error(h, STATUS_CANCELLED) };
        }
        op.waiter = waiter;
        return { resp: this.#goAsync(h, chainCtx, op) };
      }
      default:
        return { resp: this.#error(h, STATUS_NOT_SUPPORTED) };
    }
  }

  #negotiate(req: Uint8Array, h: Smb2Header): Uint8Array {
    if (this.#dialect !== 0) {
      this.#close(); // a second NEGOTIATE on a connection: 3.3.5.3.1 disconnects
      return new Uint8Array(0);
    }
    const r = decodeSmb2NegotiateRequest(req);
    const o = this.#server.options;
    const dialect = chooseSmb2Dialect(r.dialects, o.dialects ?? [SMB2_DIALECT.SMB311, SMB2_DIALECT.SMB302, SMB2_DIALECT.SMB300]);
    if (dialect === undefined) return this.#error(h, STATUS_NOT_SUPPORTED);
    this.#dialect = dialect;
    this.#clientNegotiate = { capabilities: r.capabilities, guid: Uint8Array.from(r.clientGuid), securityMode: r.securityMode, dialects: r.dialects };
    const contexts = [];
    if (dialect === SMB2_DIALECT.SMB311) {
      if (!r.preauthIntegrity?.hashAlgorithms.includes(SMB2_PREAUTH_INTEGRITY_SHA512)) return this.#error(h, STATUS_INVALID_PARAMETER);
      this.#preauth = new PreauthIntegrity().update(req);
      contexts.push(preauthContext(randomBytes(32)));
      // 3.3.5.4: the cipher both support, or "no common cipher" (a CipherCount of 1 naming 0)
      if (r.ciphers) {
        this.#cipher = o.encryption === 'off' ? 0 : chooseCipher(r.ciphers);
        contexts.push(encryptionContext([this.#cipher]));
      }
      if (r.signingAlgorithms) {
        this.#signingAlgorithm = r.signingAlgorithms.includes(SMB2_SIGNING.AES_GMAC) ? SMB2_SIGNING.AES_GMAC : SMB2_SIGNING.AES_CMAC;
        contexts.push(signingContext([this.#signingAlgorithm]));
      }
    } else if (o.encryption !== 'off' && (r.capabilities & SMB2_GLOBAL_CAP.ENCRYPTION)) {
      // 3.0 and 3.0.2 have one cipher, AES-128-CCM, agreed by the capability
      this.#cipher = SMB2_CIPHER.AES_128_CCM;
      this.#capabilities |= SMB2_GLOBAL_CAP.ENCRYPTION;
    }
    const resp = encodeSmb2NegotiateResponse({
      header: this.#header(h, STATUS_SUCCESS), dialect, serverGuid: this.#server.guid,
      securityMode: this.#securityModeOf(), capabilities: this.#capabilities, maxTransactSize: MAX_TRANSACT, maxReadSize: this.#maxIo, maxWriteSize: this.#maxIo,
      systemTime: fileTimeNow(), securityBuffer: encodeSpnegoInit({ mechTypes: [OID_NTLMSSP], hint: SPNEGO_HINT_IGNORE }), contexts,
    });
    this.#preauth?.update(resp);
    debug('NEGOTIATE: dialect 0x%s, signing %d, cipher %d', dialect.toString(16), this.#signingAlgorithm, this.#cipher);
    return resp;
  }

  #securityModeOf(): number {
    return SMB2_NEGOTIATE_SIGNING_ENABLED | (this.#server.options.signingRequired ? SMB2_NEGOTIATE_SIGNING_REQUIRED : 0);
  }

  #ioctl(req: Uint8Array, h: Smb2Header): Uint8Array {
    const r = decodeSmb2IoctlRequest(req);
    const ok = (output: Uint8Array) => this.#signed(h, encodeSmb2IoctlResponse({ header: this.#header(h, STATUS_SUCCESS), ctlCode: r.ctlCode, fileId: r.fileId, output }));
    switch (r.ctlCode) {
      case FSCTL.VALIDATE_NEGOTIATE_INFO: {
        // 3.3.5.15.12: what the client says it negotiated must be what it sent; a mismatch (a man in
        // the middle rewrote the NEGOTIATE) ends the connection
        const v = decodeValidateNegotiateInfo(r.input);
        const c = this.#clientNegotiate!;
        const same = v.capabilities === c.capabilities && v.securityMode === c.securityMode && v.guid.length === 16 && timingSafeEqual(v.guid, c.guid) &&
          v.dialects.length === c.dialects.length && v.dialects.every((d, i) => d === c.dialects[i]);
        if (!same) {
          debug('VALIDATE_NEGOTIATE_INFO does not match the NEGOTIATE: disconnecting');
          this.#close();
          return new Uint8Array(0);
        }
        return ok(encodeValidateNegotiateResponse({ capabilities: this.#capabilities, guid: this.#server.guid, securityMode: this.#securityModeOf(), dialect: this.#dialect }));
      }
      case FSCTL.QUERY_NETWORK_INTERFACE_INFO:
        return ok(encodeNetworkInterfaceInfo(this.#server.interfaces()));
      case FSCTL.DFS_GET_REFERRALS:
      case FSCTL.DFS_GET_REFERRALS_EX:
        return this.#error(h, STATUS_FS_DRIVER_REQUIRED); // as Windows and Samba answer for a server without DFS
      default:
        debug('FSCTL 0x%s: not supported yet', r.ctlCode.toString(16));
        return this.#error(h, STATUS_NOT_SUPPORTED);
    }
  }

  #sessionSetup(req: Uint8Array, h: Smb2Header): Uint8Array {
    const r = decodeSmb2SessionSetupRequest(req);
    let s = h.sessionId === 0n ? undefined : this.#sessions.get(h.sessionId);
    if (h.sessionId !== 0n && !s) return this.#error(h, STATUS_USER_SESSION_DELETED);
    // a valid session may authenticate again (3.3.5.5.2: re-authentication): it stays valid, with
    // its keys, meanwhile; a failed one ends it
    if (!s) {
      if (this.#sessions.size >= MAX_SESSIONS_PER_CONNECTION) return this.#error(h, STATUS_INSUFFICIENT_RESOURCES);
      s = { id: this.#server.nextSessionId(), state: 'in-progress', guest: false, encryptData: false, trees: new Map(), preauth: this.#preauth?.fork() };
      this.#sessions.set(s.id, s);
    }
    const session = s;
    try {
      return this.#authenticate(req, h, r.securityBuffer, session, r.previousSessionId);
    } catch (err) {
      this.#dropSession(session.id); // a malformed token ends the exchange it belongs to
      throw err;
    }
  }

  /** Ends one session of this connection: its opens close (LOGOFF, a failed re-authentication, a
   * reconnect that names it as PreviousSessionId). */
  #dropSession(id: bigint): void {
    if (!this.#sessions.delete(id)) return;
    this.#server.sessions.delete(id);
    void this.#files.closeAll((sid) => sid === id);
  }

  /** @internal The server drops a session of this connection that a new one replaces (3.3.5.5.3). */
  expireSession(id: bigint, user: string): boolean {
    const s = this.#sessions.get(id);
    if (s?.state !== 'valid' || s.anonymous || s.user?.toLowerCase() !== user.toLowerCase()) return false;
    debug('session 0x%s is replaced by a reconnect: its opens close', id.toString(16));
    this.#dropSession(id);
    return true;
  }

  #authenticate(req: Uint8Array, h: Smb2Header, buf: Uint8Array, session: Session, previousSessionId: bigint): Uint8Array {
    const reauth = session.state === 'valid';
    if (!reauth) session.preauth?.update(req);
    const fail = (status: number): Uint8Array => {
      const resp = this.#error({ ...h, sessionId: session.id }, status);
      this.#dropSession(session.id);
      return resp;
    };
    // the token: SPNEGO around NTLMSSP, or NTLMSSP as it is
    let spnego = false;
    let ntlm: Uint8Array | undefined;
    let mechTypesDer: Uint8Array | undefined;
    let clientMic: Uint8Array | undefined;
    if (buf.length >= 8 && Buffer.from(buf.subarray(0, 8)).toString('latin1') === 'NTLMSSP\0') ntlm = buf;
    else if (buf.length) {
      spnego = true;
      const t = decodeSpnego(buf);
      if (t.kind === 'init') {
        if (!t.mechTypes.includes(OID_NTLMSSP)) return fail(STATUS_NOT_SUPPORTED);
        ntlm = t.mechToken;
        mechTypesDer = Uint8Array.from(t.mechTypesDer);
      } else {
        ntlm = t.responseToken;
        clientMic = t.mechListMIC;
      }
    }
    if (!ntlm || ntlm.length < 12) return fail(STATUS_INVALID_PARAMETER);
    const type = Buffer.from(ntlm.buffer, ntlm.byteOffset, ntlm.length).readUInt32LE(8);
    if (type === 1 && (!session.challenge || reauth)) {
      const n = decodeNtlmNegotiate(ntlm);
      const serverChallenge = randomBytes(8);
      const o = this.#server.options;
      const name = o.serverName ?? 'SMBDIRECT', domain = o.domain ?? 'WORKGROUP';
      const timestamp = new Uint8Array(8);
      new DataView(timestamp.buffer).setBigUint64(0, fileTimeNow(), true);
      const flags = NTLMSSP.NEGOTIATE_UNICODE | NTLMSSP.REQUEST_TARGET | NTLMSSP.NEGOTIATE_NTLM | NTLMSSP.TARGET_TYPE_SERVER | NTLMSSP.NEGOTIATE_TARGET_INFO |
        NTLMSSP.NEGOTIATE_EXTENDED_SESSIONSECURITY | NTLMSSP.NEGOTIATE_128 | NTLMSSP.NEGOTIATE_56 |
        (n.flags & (NTLMSSP.NEGOTIATE_KEY_EXCH | NTLMSSP.NEGOTIATE_SIGN | NTLMSSP.NEGOTIATE_SEAL | NTLMSSP.NEGOTIATE_ALWAYS_SIGN | NTLMSSP.NEGOTIATE_VERSION));
      const challenge = encodeNtlmChallenge({
        flags, targetName: name, serverChallenge,
        targetInfo: [
          { id: MSV_AV.NB_DOMAIN_NAME, value: utf16le(domain) }, { id: MSV_AV.NB_COMPUTER_NAME, value: utf16le(name) },
          { id: MSV_AV.DNS_DOMAIN_NAME, value: utf16le(domain.toLowerCase()) }, { id: MSV_AV.DNS_COMPUTER_NAME, value: utf16le(name.toLowerCase()) },
          { id: MSV_AV.TIMESTAMP, value: timestamp },
        ],
      });
      session.challenge = { serverChallenge, spnego, mechTypesDer };
      const token = spnego ? encodeSpnegoResp({ negState: NEG_STATE.ACCEPT_INCOMPLETE, supportedMech: OID_NTLMSSP, responseToken: challenge }) : challenge;
      const resp = encodeSmb2SessionSetupResponse({ header: this.#header(h, STATUS_MORE_PROCESSING_REQUIRED, { sessionId: session.id }), securityBuffer: token });
      if (reauth) return this.#signed(h, resp);
      session.preauth?.update(resp);
      return resp;
    }
    if (type !== 3 || !session.challenge) return fail(STATUS_INVALID_PARAMETER);
    const a = decodeNtlmAuthenticate(ntlm);
    const o = this.#server.options;
    const anonymous = a.user === '' && a.ntChallengeResponse.length === 0;
    const entry = anonymous ? undefined : lookupUser(o.users, a.user);
    let baseKey: Uint8Array | undefined;
    let serverMic: Uint8Array | undefined;
    let guest = false;
    if (entry) baseKey = verifyNtlmv2({ hash: entry, user: a.user, domain: a.domain, serverChallenge: session.challenge.serverChallenge, ntChallengeResponse: a.ntChallengeResponse });
    if (!baseKey) {
      // anonymous is a NULL session (as Windows: it proves nothing, so it gets nothing but IPC$);
      // an unknown user is a guest only where the server allows guests
      if (!anonymous && !(o.guest && !entry)) {
        debug('SESSION_SETUP: logon failure for user %j in %j', a.user, a.domain);
        return fail(STATUS_LOGON_FAILURE);
      }
      guest = !anonymous;
    } else {
      const keyExchange = (a.flags & NTLMSSP.NEGOTIATE_KEY_EXCH) !== 0;
      const key = exportedSessionKey(baseKey, keyExchange, a.encryptedRandomSessionKey);
      const mechTypes = session.challenge.mechTypesDer;
      if (clientMic && mechTypes) {
        // [MS-SPNG] 3.3.5.1: the client's mechListMIC proves the mechanism list was not rewritten;
        // a client that sent one (Samba's, wanting signing or sealing) wants ours
        if (!equalBytes(clientMic, ntlmsspSignature(key, false, mechTypes, keyExchange))) {
          debug('SESSION_SETUP: the client\'s SPNEGO mechListMIC does not check');
          return fail(STATUS_ACCESS_DENIED);
        }
        serverMic = ntlmsspSignature(key, true, mechTypes, keyExchange);
      }
      // re-authentication keeps the session's keys (3.3.5.5.3)
      if (!reauth) {
        session.signingKey = signingKey(key.subarray(0, 16), this.#dialect, session.preauth?.value);
        if (this.#cipher) session.cipher = new SessionCipher(key.subarray(0, 16), this.#dialect, this.#cipher, session.preauth?.value);
      }
    }
    if (o.encryption === 'required' && !reauth) {
      // 3.3.5.5.3: a session that must encrypt but cannot (a guest, no common cipher) is refused
      if (!session.cipher) {
        debug('SESSION_SETUP: encryption is required and session of %j cannot encrypt', a.user);
        return fail(STATUS_ACCESS_DENIED);
      }
      session.encryptData = true;
    }
    session.user = a.user;
    session.guest = guest;
    session.anonymous = anonymous;
    session.token = undefined; // made again for whoever the session is now
    session.state = 'valid';
    session.challenge = undefined;
    this.#server.sessions.set(session.id, this);
    // a client reconnecting names its previous session: that one ends (3.3.5.5.3), its opens close
    if (previousSessionId !== 0n && previousSessionId !== session.id && !anonymous) this.#server.sessions.get(previousSessionId)?.expireSession(previousSessionId, a.user);
    const token = spnego ? encodeSpnegoResp({ negState: NEG_STATE.ACCEPT_COMPLETED, mechListMIC: serverMic }) : new Uint8Array(0);
    const resp = encodeSmb2SessionSetupResponse({
      header: this.#header(h, STATUS_SUCCESS, { sessionId: session.id }), securityBuffer: token,
      sessionFlags: (session.guest ? SMB2_SESSION_FLAG.IS_GUEST : 0) | (anonymous ? SMB2_SESSION_FLAG.IS_NULL : 0) | (session.encryptData ? SMB2_SESSION_FLAG.ENCRYPT_DATA : 0),
    });
    // the final SESSION_SETUP response of an authenticated (not guest) session is signed on every
    // 3.x dialect (3.3.5.5.3; a client that requires signing checks it, as smbclient does)
    if (session.signingKey) signMessage(session.signingKey, this.#signingAlgorithm, resp);
    debug('SESSION_SETUP: %s%s, session 0x%s', a.user || '(anonymous)', session.guest ? ' as guest' : '', session.id.toString(16));
    return resp;
  }

  #treeConnect(req: Uint8Array, h: Smb2Header, s: Session): Uint8Array {
    const r = decodeSmb2TreeConnectRequest(req);
    const name = shareNameOf(r.path);
    if (name === undefined) return this.#error(h, STATUS_BAD_NETWORK_NAME);
    const share = name.toUpperCase() === IPC ? undefined : this.#server.options.shares?.find((x) => x.name.toLowerCase() === name.toLowerCase());
    if (name.toUpperCase() !== IPC && !share) return this.#error(h, STATUS_BAD_NETWORK_NAME);
    // a NULL session reaches IPC$ only, unless the server takes guests
    if (share && s.anonymous && !this.#server.options.guest) return this.#error(h, STATUS_ACCESS_DENIED);
    // a share that requires encryption takes only sessions that can encrypt (3.3.5.7)
    if (share?.encryptData && !s.cipher) return this.#error(h, STATUS_ACCESS_DENIED);
    const treeId = this.#nextTree++;
    const type = share ? SMB2_SHARE_TYPE.DISK : SMB2_SHARE_TYPE.PIPE;
    s.trees.set(treeId, { share: share?.name ?? IPC, type, def: share });
    debug('TREE_CONNECT %s: tree %d%s', r.path, treeId, h.flags & SMB2_FLAGS.SIGNED ? ' (signed request, verified)' : '');
    return this.#signed(h, encodeSmb2TreeConnectResponse({
      header: this.#header(h, STATUS_SUCCESS, { treeId }), shareType: type, shareFlags: share?.encryptData ? SHAREFLAG_ENCRYPT_DATA : 0,
      maximalAccess: share?.readOnly ? 0x001200a9 : 0x001f01ff,
    }));
  }
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);

function lookupUser(users: Smb2ServerOptions['users'], name: string): Uint8Array | undefined {
  if (!users) return undefined;
  const key = Object.keys(users).find((u) => u.toLowerCase() === name.toLowerCase());
  if (key === undefined) return undefined;
  const v = users[key]!;
  if (typeof v === 'string') return ntHash(v);
  return typeof v.ntHash === 'string' ? Uint8Array.from(Buffer.from(v.ntHash, 'hex')) : v.ntHash;
}

export class Smb2Server extends EventEmitter {
  readonly options: Smb2ServerOptions;
  readonly guid = new Uint8Array(Buffer.from(randomUUID().replace(/-/g, ''), 'hex'));
  readonly #tcp = new Set<NetServer>();
  readonly #rdma = new Set<SmbDirectServer>();
  readonly #sockets = new Set<Socket>();
  #nextSession = 1n;

  constructor(options: Smb2ServerOptions = {}) {
    super();
    for (const [u, v] of Object.entries(options.users ?? {})) {
      if (typeof v !== 'string' && !(v.ntHash instanceof Uint8Array ? v.ntHash.length === 16 : /^[0-9a-fA-F]{32}$/.test(v.ntHash))) {
        throw new RangeError(`users.${u}: an NT hash is 16 bytes or 32 hex digits`);
      }
    }
    this.options = options;
  }

  readonly #counts = new Map<string, number>();
  readonly #shareRefs = new Map<string, Promise<ShareRef>>();

  /** @internal A share's resolved root (symlinks followed), made once. */
  shareRef(def: Smb2Share): Promise<ShareRef> {
    let p = this.#shareRefs.get(def.name);
    if (!p) {
      p = shareRef(def).catch((err: unknown) => {
        this.#shareRefs.delete(def.name);
        throw new Smb2Error(STATUS_BAD_NETWORK_NAME, `share ${def.name}: ${(err as Error).message}`);
      });
      this.#shareRefs.set(def.name, p);
    }
    return p;
  }
  #rdmaListening = false;

  /** @internal Counts one answered request. */
  count(command: number, status: number): void {
    const key = `${COMMAND_NAMES[command] ?? command}\u0000${ntstatusName(status)}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** @internal Times and attributes set by clients that the file system cannot hold. */
  readonly meta = new MetaStore();

  /** @internal Every open of every connection, for share modes. */
  readonly openTable = new OpenTable();

  /** @internal Every byte-range lock of every connection. */
  readonly lockTable = new LockTable();

  /** Files and directories open now, over all connections. */
  get openFiles(): number {
    return this.openTable.size;
  }

  /** @internal READ/WRITE bytes of every connection. */
  readonly fileCounters: FileCounters = { rdmaBytesRead: 0, rdmaBytesWritten: 0, inlineBytesRead: 0, inlineBytesWritten: 0 };

  /** @internal READ/WRITE requests in progress on all connections, and the most there were at once. */
  readonly io = { inFlight: 0, peakInFlight: 0 };

  /** Requests answered, by command and status; the READ/WRITE bytes moved by RDMA and inline; and
   * READ/WRITE requests in progress now and at most at once (how deep clients pipeline), since the
   * server was made. */
  stats(): { requests: Record<string, Record<string, number>>; bytes: FileCounters; io: { inFlight: number; peakInFlight: number } } {
    const requests: Record<string, Record<string, number>> = {};
    for (const [k, n] of this.#counts) {
      const [c, st] = k.split('\u0000') as [string, string];
      (requests[c] ??= {})[st.replace(/ \(0x[0-9a-f]+\)$/, '')] = n;
    }
    return { requests, bytes: { ...this.fileCounters }, io: { ...this.io } };
  }

  /** @internal The interfaces FSCTL_QUERY_NETWORK_INTERFACE_INFO reports: every non-internal
   * address, RDMA-capable when the server listens on SMB Direct. */
  interfaces(): Array<{ ifIndex: number; capability: number; linkSpeed: bigint; address: string }> {
    const out: Array<{ ifIndex: number; capability: number; linkSpeed: bigint; address: string }> = [];
    let index = 1;
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        if (a.internal) continue;
        out.push({ ifIndex: index, capability: this.#rdmaListening ? NETWORK_INTERFACE_CAP.RDMA : 0, linkSpeed: 10_000_000_000n, address: a.address.split('%')[0]! });
      }
      index++;
    }
    return out;
  }

  /** @internal Every valid session of every connection, by id (a reconnect's PreviousSessionId). */
  readonly sessions = new Map<bigint, ServerConnection>();

  /** @internal */
  nextSessionId(): bigint {
    return this.#nextSession++;
  }

  async listen(o: Smb2ListenOptions): Promise<{ host: string; port: number }> {
    const host = o.host ?? '127.0.0.1';
    if (o.transport === 'tcp') {
      const srv = createTcpServer({ noDelay: true }, (socket) => this.#onSocket(socket));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(o.port ?? 445, host, () => { srv.off('error', reject); resolve(); });
      });
      srv.on('error', (err) => this.emit('error', err));
      this.#tcp.add(srv);
      return { host, port: (srv.address() as { port: number }).port };
    }
    const srv = createSmbDirectServer({ provider: o.provider }, (conn) => this.#onSmbDirect(conn));
    this.#rdmaListening = true;
    srv.on('connectionError', (err: Error) => this.emit('connectionError', err));
    const addr = await srv.listen({ host, port: o.port });
    this.#rdma.add(srv);
    return addr;
  }

  /**
   * Serves SMB2 over any message transport: `send` carries one response message (a compound chain)
   * to the client, `close` ends the connection. Returns the function to hand each request message
   * to; its promise settles once that message is answered and never rejects (a malformed message is
   * answered with its status, or the connection closed). `end()` releases the connection's opens.
   */
  attach(transport: { send(message: Uint8Array): void; close(): void }): { message(m: Uint8Array): Promise<void>; end(): Promise<void> } {
    const conn = new ServerConnection(this, (m) => { if (m.length) transport.send(m); }, () => transport.close());
    return { message: (m) => conn.onMessage(m), end: () => conn.end() };
  }

  #onSocket(socket: Socket): void {
    this.#sockets.add(socket);
    const framer = new Smb2StreamFramer();
    const conn = new ServerConnection(this, (m) => { if (m.length && !socket.destroyed) socket.write(frameSmb2(m)); }, () => socket.destroy());
    socket.once('close', () => { void conn.end(); });
    framer.on('message', (m: Uint8Array) => { void conn.onMessage(m); });
    framer.on('error', () => socket.destroy());
    framer.on('mpa', () => socket.destroy()); // RDMA on a TCP listener: not offered here
    socket.on('data', (d) => framer.push(d));
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
  }

  #onSmbDirect(c: SmbDirectConnection): void {
    // direct placement: READ data by RDMA Write into the client's buffers, WRITE data by RDMA Read
    // from them; a V1_INVALIDATE response is a Send with Invalidate of the first descriptor's token
    const placement: Placement = { write: (d, data) => c.startRdmaWrite(d, data), read: (d, into) => c.rdmaRead(d, into) };
    const conn = new ServerConnection(this, (m, invalidate) => { if (m.length) c.send(m, invalidate === undefined ? {} : { invalidate }).catch(() => {}); },
      () => c.destroy(), placement, c.negotiated?.maxReadWriteSize);
    c.once('close', () => { void conn.end(); });
    c.on('message', (m: Uint8Array) => { void conn.onMessage(m); });
    c.on('error', () => {});
  }

  async close(): Promise<void> {
    for (const s of this.#tcp) s.close();
    for (const s of this.#sockets) s.destroy();
    this.#tcp.clear();
    await Promise.all([...this.#rdma].map((s) => s.close()));
    this.#rdma.clear();
  }
}

export function createServer(options: Smb2ServerOptions = {}): Smb2Server {
  return new Smb2Server(options);
}

