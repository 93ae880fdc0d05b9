// The SMB 3.x client (`connect` of smbdirect/smb2, DESIGN.md's settled name): NEGOTIATE (3.1.1 with
// preauth integrity, 3.0.2, 3.0), NTLMv2 through SPNEGO, signing of requests and verification of
// responses where the session signs, credits with multi-credit I/O, related compounds where they
// save round trips (open + query + close), and a file API shaped like node:fs/promises. Over SMB
// Direct, READ and WRITE above `rdmaThreshold` register a transfer buffer for that one I/O and let
// the server move the bytes by RDMA (SMB2_CHANNEL_RDMA_V1_INVALIDATE on 3.0.2+, V1 on 3.0); large
// I/O is split at the server's MaxRead/MaxWriteSize and pipelined, `window` requests in flight.
import { randomBytes } from 'node:crypto';
import { type Socket, connect as tcpConnect } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { debuglog } from 'node:util';

import {
  FILE_ATTRIBUTE, FILE_DISPOSITION, FILE_INFO, FILE_OPTION, NEG_STATE, NTLMSSP, OID_NTLMSSP, SMB2_CHANNEL, SMB2_COMMAND, SMB2_DIALECT, SMB2_FILE_ID_RELATED,
  SMB2_FLAGS, SMB2_GLOBAL_CAP, SMB2_HEADER_SIZE, SMB2_INFO, SMB2_NEGOTIATE_SIGNING_ENABLED, SMB2_NEGOTIATE_SIGNING_REQUIRED, SMB2_QUERY_DIRECTORY_FLAG,
  SMB2_SESSION_FLAG, SMB2_SIGNING, STATUS_BUFFER_OVERFLOW, STATUS_END_OF_FILE, STATUS_MORE_PROCESSING_REQUIRED, STATUS_NO_MORE_FILES, STATUS_PENDING,
  STATUS_SUCCESS, type DirectoryEntry, type FileStat, type Smb2FileId, type Smb2Header, type Smb2HeaderInit, decodeDirectoryEntries, decodeFileAllInfo,
  decodeNtlmChallenge, decodeSmb2CloseResponse, decodeSmb2CreateResponse, decodeSmb2Header, decodeSmb2NegotiateResponse, decodeSmb2OutputResponse,
  decodeSmb2ReadResponse, decodeSmb2SessionSetupResponse, decodeSmb2TreeConnectResponse, decodeSmb2WriteResponse, decodeSpnego, encodeFileRenameInfo,
  encodeNtlmAuthenticate, encodeNtlmNegotiate, encodeSmb2CloseRequest, encodeSmb2CreateRequest, encodeSmb2Empty, encodeSmb2FlushRequest, encodeSmb2Logoff,
  encodeSmb2NegotiateRequest, encodeSmb2QueryDirectoryRequest, encodeSmb2QueryInfoRequest, encodeSmb2ReadRequest, encodeSmb2SessionSetupRequest,
  encodeSmb2SetInfoRequest, encodeSmb2TreeConnectRequest, encodeSmb2WriteRequest, encodeSpnegoInit, encodeSpnegoResp, isSmb2Transform, msOfFileTime,
  ntstatusName, preauthContext, signingContext, smb2CreditCharge, splitSmb2Compound,
} from '../../framing/smb2/index.js';
import type { BufferDescriptor } from '../../framing/buffer-descriptor.js';
import { Smb2StreamFramer, frameSmb2 } from '../providers/stream.js';
import type { SmbDirectConnection } from '../smbdirect/connection.js';
import { connect as smbdConnect } from '../smbdirect/server.js';
import type { ProviderChoice } from '../smbdirect/server.js';
import { ntHash, ntlmv2Response } from './auth/ntlm.js';
import { Smb2Error } from './errors.js';
import { IoBuffers } from './io-buffers.js';
import { PreauthIntegrity } from './preauth.js';
import { signMessage, signingKey, verifyKsmbdReadSignature, verifySignature } from './signing.js';

const debug = debuglog('smbdirect_smb2_client');

// access rights a client asks for ([MS-SMB2] 2.2.13.1)
const FILE_READ_DATA = 0x1, FILE_WRITE_DATA = 0x2, FILE_APPEND_DATA = 0x4, FILE_READ_EA = 0x8, FILE_WRITE_EA = 0x10;
const FILE_READ_ATTRIBUTES = 0x80, FILE_WRITE_ATTRIBUTES = 0x100, DELETE = 0x10000, READ_CONTROL = 0x20000, SYNCHRONIZE = 0x100000;
const FILE_LIST_DIRECTORY = FILE_READ_DATA;
const SHARE_ALL = 0x7;

export interface Smb2ConnectOptions {
  host: string;
  /** Default: 445 over TCP and RDMA on verbs, 5445 on the software iWARP provider. */
  port?: number;
  /** The share to connect to (TREE_CONNECT); without it only the session is set up. */
  share?: string;
  username: string;
  password: string;
  domain?: string;
  /** 'rdma': SMB Direct only; 'tcp': direct TCP only; 'auto' (default): SMB Direct, then TCP. */
  transport?: 'rdma' | 'tcp' | 'auto';
  /** The RDMA provider ('verbs', 'iwarp-tcp' or an RdmaProvider); default: the best for `host`. */
  provider?: ProviderChoice;
  /** Dialects offered, in any order (default 3.1.1, 3.0.2, 3.0). */
  dialects?: readonly number[];
  /** Refuse a session that cannot sign (guest, anonymous). Requests of a user's session are signed
   * either way, as Samba's clients do (Samba refuses unsigned TREE_CONNECTs on SMB3), and every
   * response to them must be signed with the session's key. */
  requireSigning?: boolean;
  /** READ/WRITE of at least this many bytes go by RDMA over SMB Direct (default 4096). */
  rdmaThreshold?: number;
  /** Requests of one large read or write in flight at once (default 8). */
  window?: number;
  /** The largest READ/WRITE request (default: the server's MaxReadSize/MaxWriteSize; cifs uses 1 MiB). */
  maxIoSize?: number;
  /** Deadline of each request (default 60 s; a request the server answered STATUS_PENDING waits
   * for its final response up to this long again). */
  timeoutMs?: number;
}

/** What `stat` gives: node's Stats in shape, from FileAllInformation. */
export interface Smb2Stats {
  size: number; blocks: number; nlink: number; ino: bigint; attributes: number;
  atimeMs: number; mtimeMs: number; ctimeMs: number; birthtimeMs: number;
  atime: Date; mtime: Date; ctime: Date; birthtime: Date;
  isFile(): boolean; isDirectory(): boolean;
}

/** What `readdir(path, { withFileTypes: true })` gives per entry. */
export interface Smb2Dirent { name: string; path: string; stats: Smb2Stats; isFile(): boolean; isDirectory(): boolean }

function statsOf(st: FileStat): Smb2Stats {
  const ms = (t: bigint) => (t === 0n ? 0 : msOfFileTime(t));
  const [atimeMs, mtimeMs, ctimeMs, birthtimeMs] = [ms(st.lastAccessTime), ms(st.lastWriteTime), ms(st.changeTime), ms(st.creationTime)];
  const dir = st.isDirectory || (st.attributes & FILE_ATTRIBUTE.DIRECTORY) !== 0;
  return {
    size: Number(st.endOfFile), blocks: Math.ceil(Number(st.allocationSize) / 512), nlink: st.nlink, ino: st.fileId, attributes: st.attributes,
    atimeMs, mtimeMs, ctimeMs, birthtimeMs, atime: new Date(atimeMs), mtime: new Date(mtimeMs), ctime: new Date(ctimeMs), birthtime: new Date(birthtimeMs),
    isFile: () => !dir, isDirectory: () => dir,
  };
}

/** A share-relative path as SMB2 names it: backslashes, no leading separator, '' for the root. */
function smbPath(path: string): string {
  if (typeof path !== 'string') throw new TypeError('a path must be a string');
  if (path.includes('\0')) throw new Smb2Error(0xc0000033 /* STATUS_OBJECT_NAME_INVALID */, `a path with a NUL: ${JSON.stringify(path)}`);
  return path.replace(/\//g, '\\').replace(/^\\+/, '').replace(/\\+$/, '').replace(/^\.$/, '');
}

/** One message carrier: direct TCP or an SMB Direct connection. */
interface Wire {
  send(m: Uint8Array): void;
  close(): void;
  /** SMB Direct only: registrations for READ/WRITE by RDMA. */
  rdma?: SmbDirectConnection;
  /** SMB Direct's negotiated MaxReadWriteSize: the ceiling of one READ/WRITE by RDMA. */
  maxRdma?: number;
}

interface Pending {
  resolve(pdu: Uint8Array): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  /** A compound's later items resolve through the first's message: each has its own entry. */
  command: number;
  /** The session the request was sent on (0 before SESSION_SETUP's first response). */
  sessionId: bigint;
}

const CREDIT_TARGET = 512;

/** An open file (`client.open`): node:fs/promises' FileHandle in shape. */
export class Smb2FileHandle {
  readonly #client: Smb2Client;
  readonly fileId: Smb2FileId;
  readonly path: string;
  #closed = false;
  /** Where the next read/write without a position goes (and an 'a' open's writes: the end). */
  #position = 0;
  readonly #append: boolean;

  /** @internal */
  constructor(client: Smb2Client, fileId: Smb2FileId, path: string, append: boolean, size: number) {
    this.#client = client;
    this.fileId = fileId;
    this.path = path;
    this.#append = append;
    if (append) this.#position = size;
  }

  #check(): void {
    if (this.#closed) throw Object.assign(new Error(`${this.path}: the handle is closed`), { code: 'EBADF' });
  }

  /** Reads up to `length` bytes at `position` (default: where the last read/write ended) into
   * `buffer` at `offset`; bytesRead is short only at the end of the file. */
  async read(buffer: Uint8Array, offset = 0, length = buffer.length - offset, position: number | null = null): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    this.#check();
    const at = position ?? this.#position;
    const n = await this.#client._readInto(this, buffer.subarray(offset, offset + length), at);
    if (position === null) this.#position = at + n;
    return { bytesRead: n, buffer };
  }

  async write(buffer: Uint8Array, offset = 0, length = buffer.length - offset, position: number | null = null): Promise<{ bytesWritten: number; buffer: Uint8Array }> {
    this.#check();
    const at = this.#append ? this.#position : position ?? this.#position;
    const n = await this.#client._writeFrom(this, buffer.subarray(offset, offset + length), at);
    if (position === null || this.#append) this.#position = at + n;
    return { bytesWritten: n, buffer };
  }

  async stat(): Promise<Smb2Stats> {
    this.#check();
    return statsOf(await this.#client._queryAll(this.fileId, this.path));
  }

  async truncate(len = 0): Promise<void> {
    this.#check();
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(len), true);
    await this.#client._setInfo(this.fileId, FILE_INFO.END_OF_FILE, b, this.path);
  }

  async sync(): Promise<void> {
    this.#check();
    await this.#client._flush(this.fileId, this.path);
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client._close(this.fileId, this.path);
  }
}

export class Smb2Client {
  readonly #wire: Wire;
  readonly #o: Required<Pick<Smb2ConnectOptions, 'rdmaThreshold' | 'window' | 'timeoutMs'>>;
  readonly #pending = new Map<bigint, Pending>();
  /** Transfer buffers of READ/WRITE by RDMA, reused (their registrations are per I/O). */
  readonly #ioBuffers = new IoBuffers();
  #nextId = 0n;
  #credits = 1;
  readonly #creditWaiters: Array<() => void> = [];
  #error?: Error;
  #closing?: Promise<void>;
  /** The negotiated dialect, MaxRead/Write/TransactSize. */
  dialect = 0;
  maxRead = 65536;
  maxWrite = 65536;
  maxTransact = 65536;
  /** The server requires signing (NEGOTIATE's SecurityMode): a guest session cannot serve it. */
  #serverSigningRequired = false;
  #signingAlgorithm: number = SMB2_SIGNING.AES_CMAC;
  #signingKey?: Uint8Array;
  #sign = false;
  sessionId = 0n;
  treeId = 0;
  /** Bytes moved by RDMA and inline, both ways. */
  readonly stats = { rdmaBytesRead: 0, rdmaBytesWritten: 0, inlineBytesRead: 0, inlineBytesWritten: 0, requests: 0, compounds: 0, ksmbdReadSignatures: 0 };

  /** @internal: use connect(). */
  constructor(wire: Wire, o: Smb2ConnectOptions) {
    this.#wire = wire;
    this.#o = { rdmaThreshold: o.rdmaThreshold ?? 4096, window: o.window ?? 8, timeoutMs: o.timeoutMs ?? 60_000 };
    for (const [k, v] of Object.entries(this.#o)) {
      if (!Number.isInteger(v) || v < (k === 'rdmaThreshold' ? 0 : 1)) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
  }

  /** The transport under the session: 'rdma' (SMB Direct) or 'tcp'. */
  get transport(): 'rdma' | 'tcp' {
    return this.#wire.rdma ? 'rdma' : 'tcp';
  }

  /** The SMB Direct connection under the session (undefined over TCP): its stats() show the
   * registrations and RDMA traffic. */
  get smbDirect(): SmbDirectConnection | undefined {
    return this.#wire.rdma;
  }

  /** Whether requests are signed (every user session's are; guest and anonymous ones cannot be). */
  get signing(): boolean {
    return this.#sign;
  }

  // ---- messages ---------------------------------------------------------------------------------

  /** @internal: the wire's receive path. Never throws: a malformed response ends the connection. */
  _onMessage(m: Uint8Array): void {
    try {
      if (isSmb2Transform(m)) throw new Smb2Error(0xc00000bb /* STATUS_NOT_SUPPORTED */, 'an encrypted response: this client does not encrypt');
      for (const item of splitSmb2Compound(m, 64, true)) {
        const pdu = m.subarray(item.offset, item.offset + item.length);
        this.#onResponse(pdu, item.header);
      }
    } catch (err) {
      this._fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #onResponse(pdu: Uint8Array, h: Smb2Header): void {
    if (!(h.flags & SMB2_FLAGS.SERVER_TO_REDIR)) throw new Error('a request from the server');
    if (h.messageId === 0xffffffffffffffffn) return; // an oplock break: none are asked for
    const p = this.#pending.get(h.messageId);
    if (!p) throw new Error(`a response to MessageId ${h.messageId}, which is not outstanding`);
    this.#grant(h.credits);
    if (h.status === STATUS_PENDING && h.flags & SMB2_FLAGS.ASYNC_COMMAND) {
      // interim: the final response follows with the same MessageId (3.2.5.1.5)
      p.timer.refresh();
      return;
    }
    if (this.#sign && p.sessionId !== 0n && h.sessionId !== p.sessionId) {
      // a signed session's response must name it: one without its SessionId would skip the check below
      throw new Smb2Error(0xc0000022, `a response to command 0x${h.command.toString(16)} for session 0x${h.sessionId.toString(16)}, sent on 0x${p.sessionId.toString(16)}`);
    }
    if (this.#sign && this.#signingKey && h.sessionId === this.sessionId && h.sessionId !== 0n) {
      // 3.2.5.1.3: a session that signs gets signed responses (errors before the session existed aside)
      if (!(h.flags & SMB2_FLAGS.SIGNED)) {
        throw new Smb2Error(0xc0000022, `an unsigned response (${ntstatusName(h.status)}) to command 0x${h.command.toString(16)} on a signed session`);
      } else if (!verifySignature(this.#signingKey, this.#signingAlgorithm, pdu) && !this.#ksmbdRead(pdu, h)) {
        throw new Smb2Error(0xc0000022 /* STATUS_ACCESS_DENIED */, `a response to command 0x${h.command.toString(16)} with a bad signature`);
      }
    }
    this.#pending.delete(h.messageId);
    clearTimeout(p.timer);
    p.resolve(pdu);
  }

  /** A READ response without inline data (placed by RDMA, or an error: at most 80 bytes) signed as
   * ksmbd signs it (verifyKsmbdReadSignature). */
  #ksmbdRead(pdu: Uint8Array, h: Smb2Header): boolean {
    if (h.command !== SMB2_COMMAND.READ || pdu.length > SMB2_HEADER_SIZE + 16) return false;
    if (!verifyKsmbdReadSignature(this.#signingKey!, this.#signingAlgorithm, pdu)) return false;
    this.stats.ksmbdReadSignatures++;
    return true;
  }

  #grant(n: number): void {
    this.#credits += n;
    while (this.#creditWaiters.length && this.#credits > 0) this.#creditWaiters.shift()!();
  }

  /** Ends the connection with `err`: every outstanding request rejects with it. */
  _fail(err: Error): void {
    if (this.#error) return;
    this.#error = err;
    debug('connection failed: %s', err.message);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.#pending.delete(id);
    }
    for (const w of this.#creditWaiters.splice(0)) w();
    this.#wire.close();
  }

  #closedError(): Error {
    return Object.assign(new Error(`the SMB2 connection is closed${this.#error ? `: ${this.#error.message}` : ''}`, { cause: this.#error }), { code: 'ECONNRESET' });
  }

  /** Waits until `charge` credits are there and takes them (a request may never run ahead of them). */
  async #takeCredits(charge: number): Promise<void> {
    // bounded like a response: a server that grants nothing (and has nothing outstanding that
    // could) would otherwise leave the request waiting forever
    const deadline = performance.now() + this.#o.timeoutMs;
    while (this.#credits < charge) {
      if (this.#error) throw this.#closedError();
      const left = deadline - performance.now();
      if (left <= 0) {
        throw Object.assign(new Error(`the server granted no credits for ${this.#o.timeoutMs} ms (${this.#credits} held, ${charge} needed)`), { code: 'ETIMEDOUT' });
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        timer.unref();
        this.#creditWaiters.push(() => { clearTimeout(timer); r(); });
      });
    }
    if (this.#error) throw this.#closedError();
    this.#credits -= charge;
  }

  /**
   * Sends the requests `build` makes (one, or a related compound: each after the first gets
   * RELATED_OPERATIONS) and resolves with their responses, in order. Each item's header gets its
   * MessageId, CreditCharge, a credit request, the session and tree, and a signature.
   */
  async #send(items: Array<{ command: number; charge?: number; build: (h: Omit<Smb2HeaderInit, 'command'>) => Uint8Array }>, sessionId = this.sessionId, treeId = this.treeId): Promise<Uint8Array[]> {
    const charges = items.map((i) => Math.max(1, i.charge ?? 1));
    await this.#takeCredits(charges.reduce((a, b) => a + b, 0));
    const pdus: Uint8Array[] = [];
    const waits: Array<Promise<Uint8Array>> = [];
    items.forEach((item, i) => {
      const messageId = this.#nextId;
      this.#nextId += BigInt(charges[i]!);
      const want = Math.max(charges[i]!, Math.min(CREDIT_TARGET, CREDIT_TARGET - this.#credits));
      const pdu = item.build({
        messageId, creditCharge: this.dialect ? charges[i]! : 0, credits: Math.min(0xffff, want), sessionId, treeId,
        flags: i > 0 ? SMB2_FLAGS.RELATED_OPERATIONS : 0,
      });
      pdus.push(pdu);
      waits.push(new Promise<Uint8Array>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#pending.delete(messageId);
          reject(Object.assign(new Error(`no response to command 0x${item.command.toString(16)} (MessageId ${messageId}) within ${this.#o.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
        }, this.#o.timeoutMs);
        timer.unref();
        this.#pending.set(messageId, { resolve, reject, timer, command: item.command, sessionId });
      }));
    });
    // a compound: each item 8-byte aligned, NextCommand to the next, each signed on its own
    const sizes = pdus.map((p, i) => (i < pdus.length - 1 ? (p.length + 7) & ~7 : p.length));
    const out = pdus.length === 1 ? pdus[0]! : new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    pdus.forEach((p, i) => {
      if (pdus.length > 1) out.set(p, at);
      const view = out.subarray(at, at + sizes[i]!);
      if (i < pdus.length - 1) new DataView(out.buffer, out.byteOffset).setUint32(at + 20, sizes[i]!, true);
      if (this.#sign && this.#signingKey && sessionId !== 0n) signMessage(this.#signingKey, this.#signingAlgorithm, view);
      at += sizes[i]!;
    });
    this.stats.requests += items.length;
    if (items.length > 1) this.stats.compounds++;
    this.#wire.send(out);
    return Promise.all(waits);
  }

  async #one(command: number, build: (h: Omit<Smb2HeaderInit, 'command'>) => Uint8Array, charge = 1): Promise<Uint8Array> {
    return (await this.#send([{ command, charge, build }]))[0]!;
  }

  /** The status of a response, thrown as an Smb2Error unless it is one of `ok`. */
  static #check(pdu: Uint8Array, what: string, ...ok: number[]): Smb2Header {
    const h = decodeSmb2Header(pdu);
    if (h.status !== STATUS_SUCCESS && !ok.includes(h.status)) throw new Smb2Error(h.status, `${what}: ${ntstatusName(h.status)}`);
    return h;
  }

  // ---- session ----------------------------------------------------------------------------------

  /** @internal: NEGOTIATE, SESSION_SETUP, TREE_CONNECT. */
  async _start(o: Smb2ConnectOptions): Promise<void> {
    const dialects = [...(o.dialects ?? [SMB2_DIALECT.SMB311, SMB2_DIALECT.SMB302, SMB2_DIALECT.SMB300])];
    if (dialects.length === 0 || dialects.some((d) => d !== SMB2_DIALECT.SMB300 && d !== SMB2_DIALECT.SMB302 && d !== SMB2_DIALECT.SMB311)) {
      throw new RangeError(`dialects: 0x300, 0x302 and 0x311 are supported, got ${dialects.map((d) => `0x${d.toString(16)}`).join(', ')}`);
    }
    const preauth = new PreauthIntegrity();
    let negReq: Uint8Array | undefined;
    const negRes = await this.#one(SMB2_COMMAND.NEGOTIATE, (h) => (negReq = encodeSmb2NegotiateRequest({
      header: { ...h, creditCharge: 0 }, dialects, clientGuid: randomBytes(16), capabilities: SMB2_GLOBAL_CAP.LARGE_MTU,
      securityMode: SMB2_NEGOTIATE_SIGNING_ENABLED | (o.requireSigning ? SMB2_NEGOTIATE_SIGNING_REQUIRED : 0),
      contexts: [preauthContext(randomBytes(32)), signingContext([SMB2_SIGNING.AES_GMAC, SMB2_SIGNING.AES_CMAC])],
    })));
    Smb2Client.#check(negRes, 'NEGOTIATE');
    const neg = decodeSmb2NegotiateResponse(negRes);
    if (!dialects.includes(neg.dialect)) throw new Smb2Error(0xc00000bb, `the server chose dialect 0x${neg.dialect.toString(16)}, which was not offered`);
    this.dialect = neg.dialect;
    const cap = Math.min(this.#wire.maxRdma ?? Infinity, o.maxIoSize ?? Infinity);
    this.maxRead = Math.min(neg.maxReadSize, cap);
    this.maxWrite = Math.min(neg.maxWriteSize, cap);
    this.maxTransact = neg.maxTransactSize;
    if (this.maxRead < 4096 || this.maxWrite < 4096) throw new Smb2Error(0xc00000bb, `MaxReadSize ${this.maxRead} / MaxWriteSize ${this.maxWrite}: too small`);
    this.#serverSigningRequired = (neg.securityMode & SMB2_NEGOTIATE_SIGNING_REQUIRED) !== 0;
    if (neg.dialect === SMB2_DIALECT.SMB311) {
      preauth.update(negReq!).update(negRes);
      this.#signingAlgorithm = neg.signingAlgorithm ?? SMB2_SIGNING.AES_CMAC;
    }
    await this.#sessionSetup(o, preauth);
    if (o.share !== undefined) await this.#treeConnect(o.host, o.share);
  }

  async #sessionSetup(o: Smb2ConnectOptions, connPreauth: PreauthIntegrity): Promise<void> {
    const preauth = connPreauth.fork();
    const is311 = this.dialect === SMB2_DIALECT.SMB311;
    const securityMode = SMB2_NEGOTIATE_SIGNING_ENABLED | (o.requireSigning ? SMB2_NEGOTIATE_SIGNING_REQUIRED : 0);
    const flags = NTLMSSP.NEGOTIATE_UNICODE | NTLMSSP.REQUEST_TARGET | NTLMSSP.NEGOTIATE_NTLM | NTLMSSP.NEGOTIATE_ALWAYS_SIGN |
      NTLMSSP.NEGOTIATE_EXTENDED_SESSIONSECURITY | NTLMSSP.NEGOTIATE_TARGET_INFO | NTLMSSP.NEGOTIATE_128;
    let req1: Uint8Array | undefined;
    const res1 = await this.#one(SMB2_COMMAND.SESSION_SETUP, (h) => (req1 = encodeSmb2SessionSetupRequest({
      header: h, securityMode, securityBuffer: encodeSpnegoInit({ mechTypes: [OID_NTLMSSP], mechToken: encodeNtlmNegotiate(flags) }),
    })), 1);
    const h1 = Smb2Client.#check(res1, 'SESSION_SETUP', STATUS_MORE_PROCESSING_REQUIRED);
    if (h1.status !== STATUS_MORE_PROCESSING_REQUIRED) throw new Smb2Error(h1.status, 'SESSION_SETUP: the server accepted no authentication');
    if (is311) preauth.update(req1!).update(res1);
    this.sessionId = h1.sessionId;
    const token = decodeSpnego(decodeSmb2SessionSetupResponse(res1).securityBuffer);
    if (!('responseToken' in token) || !token.responseToken) throw new Smb2Error(0xc000006d, 'SESSION_SETUP: no NTLMSSP CHALLENGE in the server\'s SPNEGO answer');
    const ch = decodeNtlmChallenge(token.responseToken);
    const domain = o.domain ?? '';
    const v2 = ntlmv2Response({ hash: ntHash(o.password), user: o.username, domain, serverChallenge: ch.serverChallenge, targetInfo: ch.targetInfoBytes });
    const auth = encodeNtlmAuthenticate({
      flags: ch.flags & flags, lmChallengeResponse: v2.lmChallengeResponse, ntChallengeResponse: v2.ntChallengeResponse, domain, user: o.username,
      workstation: 'NODE', encryptedRandomSessionKey: new Uint8Array(0),
    });
    let req2: Uint8Array | undefined;
    const res2 = await this.#one(SMB2_COMMAND.SESSION_SETUP, (h) => (req2 = encodeSmb2SessionSetupRequest({
      header: h, securityMode, securityBuffer: encodeSpnegoResp({ negState: NEG_STATE.ACCEPT_INCOMPLETE, responseToken: auth }),
    })));
    const h2 = decodeSmb2Header(res2);
    if (h2.status !== STATUS_SUCCESS) {
      this.sessionId = 0n;
      throw new Smb2Error(h2.status, `SESSION_SETUP as ${domain ? `${domain}\\` : ''}${o.username}: ${ntstatusName(h2.status)}`);
    }
    if (is311) preauth.update(req2!);
    const sessionFlags = decodeSmb2SessionSetupResponse(res2).sessionFlags;
    if (sessionFlags & SMB2_SESSION_FLAG.ENCRYPT_DATA) throw new Smb2Error(0xc0000022, 'the server requires encryption, which this client does not do yet');
    const anonymous = (sessionFlags & (SMB2_SESSION_FLAG.IS_GUEST | SMB2_SESSION_FLAG.IS_NULL)) !== 0;
    if (!anonymous) {
      this.#signingKey = signingKey(v2.sessionBaseKey, this.dialect, is311 ? preauth.value : undefined);
      this.#sign = true;
      // 3.1.1: the final SESSION_SETUP response is signed with the new key (3.3.5.5.3): check it
      if (is311 && (!(h2.flags & SMB2_FLAGS.SIGNED) || !verifySignature(this.#signingKey, this.#signingAlgorithm, res2))) {
        throw new Smb2Error(0xc0000022, 'SESSION_SETUP: the final response is not signed with the session\'s key');
      }
    } else if (o.requireSigning || this.#serverSigningRequired) {
      throw new Smb2Error(0xc0000022, 'SESSION_SETUP: a guest or anonymous session cannot sign');
    }
  }

  async #treeConnect(host: string, share: string): Promise<void> {
    const res = await this.#one(SMB2_COMMAND.TREE_CONNECT, (h) => encodeSmb2TreeConnectRequest({ header: h, path: `\\\\${host}\\${share}` }));
    Smb2Client.#check(res, `TREE_CONNECT \\\\${host}\\${share}`);
    this.treeId = decodeSmb2TreeConnectResponse(res).header.treeId;
  }

  /** Tree disconnect, logoff, then the transport's close. Idempotent; outstanding requests reject. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#error) {
        try {
          if (this.treeId) await this.#one(SMB2_COMMAND.TREE_DISCONNECT, (h) => encodeSmb2Empty(SMB2_COMMAND.TREE_DISCONNECT, h, false));
          if (this.sessionId) await this.#one(SMB2_COMMAND.LOGOFF, (h) => encodeSmb2Logoff(h));
        } catch (err) {
          debug('close: %s', (err as Error).message);
        }
      }
      this._fail(Object.assign(new Error('closed by the client'), { code: 'ERR_SMBD_CLOSED' }));
    })();
    return this.#closing;
  }

  // ---- files ------------------------------------------------------------------------------------

  #create(path: string, desiredAccess: number, createDisposition: number, createOptions = 0) {
    return { command: SMB2_COMMAND.CREATE, build: (h: Omit<Smb2HeaderInit, 'command'>) => encodeSmb2CreateRequest({ header: h, name: smbPath(path), desiredAccess: desiredAccess | SYNCHRONIZE, createDisposition, createOptions, shareAccess: SHARE_ALL }) };
  }

  #closeItem(fileId: Smb2FileId = SMB2_FILE_ID_RELATED) {
    return { command: SMB2_COMMAND.CLOSE, build: (h: Omit<Smb2HeaderInit, 'command'>) => encodeSmb2CloseRequest({ header: h, fileId }) };
  }

  /** CREATE + `middle` (on the file it opens) + CLOSE in one related compound: the middle's
   * response, after the CREATE's status is checked. */
  async #openDoClose(what: string, path: string, access: number, disposition: number, options: number, middle?: { command: number; build: (h: Omit<Smb2HeaderInit, 'command'>) => Uint8Array }, ...ok: number[]): Promise<Uint8Array | undefined> {
    const items = [this.#create(path, access, disposition, options), ...(middle ? [middle] : []), this.#closeItem()];
    const res = await this.#send(items);
    Smb2Client.#check(res[0]!, `${what} ${path}`);
    if (middle) Smb2Client.#check(res[1]!, `${what} ${path}`, ...ok);
    return middle ? res[1] : undefined;
  }

  /**
   * Opens `path`: flags as node's fs.open ('r', 'r+', 'w', 'w+', 'wx', 'a', 'a+', 'ax'). A missing
   * file is ENOENT, an existing one under 'x' EEXIST, a directory EISDIR.
   */
  async open(path: string, flags = 'r'): Promise<Smb2FileHandle> {
    const f: Record<string, [number, number]> = {
      r: [FILE_READ_DATA, FILE_DISPOSITION.OPEN], 'r+': [FILE_READ_DATA | FILE_WRITE_DATA, FILE_DISPOSITION.OPEN],
      w: [FILE_WRITE_DATA, FILE_DISPOSITION.OVERWRITE_IF], 'w+': [FILE_READ_DATA | FILE_WRITE_DATA, FILE_DISPOSITION.OVERWRITE_IF],
      wx: [FILE_WRITE_DATA, FILE_DISPOSITION.CREATE], 'wx+': [FILE_READ_DATA | FILE_WRITE_DATA, FILE_DISPOSITION.CREATE],
      a: [FILE_WRITE_DATA | FILE_APPEND_DATA, FILE_DISPOSITION.OPEN_IF], 'a+': [FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA, FILE_DISPOSITION.OPEN_IF],
      ax: [FILE_WRITE_DATA | FILE_APPEND_DATA, FILE_DISPOSITION.CREATE],
    };
    const m = f[flags];
    if (!m) throw Object.assign(new TypeError(`flags must be one of ${Object.keys(f).join(', ')}, got ${JSON.stringify(flags)}`), { code: 'ERR_SMBD_INVALID_ARGUMENT' });
    const access = m[0] | FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES * Number(flags !== 'r') | FILE_READ_EA | FILE_WRITE_EA * Number(flags !== 'r') | READ_CONTROL;
    const [res] = await this.#send([this.#create(path, access, m[1], FILE_OPTION.NON_DIRECTORY_FILE)]);
    Smb2Client.#check(res!, `open ${path}`);
    const c = decodeSmb2CreateResponse(res!);
    return new Smb2FileHandle(this, c.fileId, path, flags.startsWith('a'), Number(c.endOfFile));
  }

  async readFile(path: string): Promise<Buffer> {
    const h = await this.open(path, 'r');
    try {
      const chunks: Buffer[] = [];
      let size = (await h.stat()).size;
      let total = 0;
      for (;;) {
        // what stat said, then on until a read comes back short (the file may grow)
        const buf = Buffer.allocUnsafe(Math.max(size - total, 65536));
        const { bytesRead } = await h.read(buf, 0, buf.length, total);
        chunks.push(buf.subarray(0, bytesRead));
        total += bytesRead;
        if (bytesRead < buf.length) break;
        size = total;
      }
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    } finally {
      await h.close();
    }
  }

  async writeFile(path: string, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const h = await this.open(path, 'w');
    try {
      await h.write(bytes, 0, bytes.length, 0);
    } finally {
      await h.close();
    }
  }

  /**
   * A Readable of the file from `start` to `end` (inclusive, as fs.createReadStream), in chunks of
   * `highWaterMark` bytes (default 4 MiB: each chunk a pipelined read of MaxReadSize pieces). The
   * handle is closed at the end, on an error and on destroy().
   */
  createReadStream(path: string, opts: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const chunk = opts.highWaterMark ?? 4 * 1024 * 1024;
    const end = opts.end ?? Infinity;
    let position = opts.start ?? 0;
    let h: Smb2FileHandle | undefined;
    return new Readable({
      highWaterMark: chunk,
      construct: (cb) => { this.open(path, 'r').then((x) => { h = x; cb(); }, cb); },
      read(this: Readable) {
        const want = Math.min(chunk, end + 1 - position);
        if (want <= 0) { this.push(null); return; }
        const buf = Buffer.allocUnsafeSlow(want);
        h!.read(buf, 0, want, position).then(({ bytesRead }) => {
          position += bytesRead;
          if (bytesRead > 0) this.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
          if (bytesRead < want) this.push(null);
        }, (err: Error) => this.destroy(err));
      },
      destroy: (err, cb) => { (h ? h.close() : Promise.resolve()).then(() => cb(err), (e: Error) => cb(err ?? e)); },
    });
  }

  /**
   * A Writable into the file (`flags` as open(), default 'w'), from `start`; writes go in order,
   * several chunks at once when they queue up (a pipelined write), with the Writable's
   * backpressure (`highWaterMark`, default 4 MiB). 'finish' comes once every byte is written and
   * the handle closed; an error destroys the stream and closes the handle.
   */
  createWriteStream(path: string, opts: { flags?: string; start?: number; highWaterMark?: number } = {}): Writable {
    let position = opts.start ?? 0;
    let h: Smb2FileHandle | undefined;
    const writeAll = async (bufs: Buffer[]) => {
      const data = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
      const { bytesWritten } = await h!.write(data, 0, data.length, position);
      position += bytesWritten;
      if (bytesWritten < data.length) throw new Smb2Error(0xc000007f /* STATUS_DISK_FULL */, `write ${path}: ${bytesWritten} of ${data.length} bytes written`);
    };
    return new Writable({
      highWaterMark: opts.highWaterMark ?? 4 * 1024 * 1024,
      construct: (cb) => { this.open(path, opts.flags ?? 'w').then((x) => { h = x; cb(); }, cb); },
      write: (c: Buffer, _enc, cb) => { writeAll([c]).then(() => cb(), cb); },
      writev: (cs, cb) => { writeAll(cs.map((c) => c.chunk as Buffer)).then(() => cb(), cb); },
      final: (cb) => { const x = h; h = undefined; (x ? x.close() : Promise.resolve()).then(() => cb(), cb); },
      destroy: (err, cb) => { (h ? h.close() : Promise.resolve()).then(() => cb(err), (e: Error) => cb(err ?? e)); },
    });
  }

  async stat(path: string): Promise<Smb2Stats> {
    const res = await this.#openDoClose('stat', path, FILE_READ_ATTRIBUTES, FILE_DISPOSITION.OPEN, 0, this.#queryAllItem(SMB2_FILE_ID_RELATED));
    return statsOf(decodeFileAllInfo(decodeSmb2OutputResponse(res!, SMB2_COMMAND.QUERY_INFO).output));
  }

  #queryAllItem(fileId: Smb2FileId) {
    return {
      command: SMB2_COMMAND.QUERY_INFO,
      build: (h: Omit<Smb2HeaderInit, 'command'>) => encodeSmb2QueryInfoRequest({ header: h, infoType: SMB2_INFO.FILE, infoClass: FILE_INFO.ALL, outputBufferLength: 4096, fileId }),
    };
  }

  async mkdir(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const p = smbPath(path);
    if (opts.recursive) {
      const parts = p.split('\\').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        await this.#openDoClose('mkdir', parts.slice(0, i).join('\\'), FILE_READ_ATTRIBUTES, FILE_DISPOSITION.OPEN_IF, FILE_OPTION.DIRECTORY_FILE);
      }
      return;
    }
    await this.#openDoClose('mkdir', path, FILE_READ_ATTRIBUTES, FILE_DISPOSITION.CREATE, FILE_OPTION.DIRECTORY_FILE);
  }

  /** Names in a directory ('.' and '..' left out); with `withFileTypes`, entries with their stats. */
  async readdir(path: string): Promise<string[]>;
  async readdir(path: string, opts: { withFileTypes: true }): Promise<Smb2Dirent[]>;
  async readdir(path: string, opts: { withFileTypes?: boolean } = {}): Promise<string[] | Smb2Dirent[]> {
    const [res] = await this.#send([this.#create(path, FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES, FILE_DISPOSITION.OPEN, FILE_OPTION.DIRECTORY_FILE)]);
    Smb2Client.#check(res!, `readdir ${path}`);
    const { fileId } = decodeSmb2CreateResponse(res!);
    const entries: DirectoryEntry[] = [];
    try {
      for (let first = true; ; first = false) {
        const outputBufferLength = Math.min(this.maxTransact, 65536);
        const r = await this.#one(SMB2_COMMAND.QUERY_DIRECTORY, (h) => encodeSmb2QueryDirectoryRequest({
          header: h, infoClass: FILE_INFO.ID_BOTH_DIRECTORY, flags: first ? SMB2_QUERY_DIRECTORY_FLAG.RESTART_SCANS : 0, fileId, pattern: '*', outputBufferLength,
        }), smb2CreditCharge(outputBufferLength));
        const h = Smb2Client.#check(r, `readdir ${path}`, STATUS_NO_MORE_FILES);
        if (h.status === STATUS_NO_MORE_FILES) break;
        entries.push(...decodeDirectoryEntries(FILE_INFO.ID_BOTH_DIRECTORY, decodeSmb2OutputResponse(r, SMB2_COMMAND.QUERY_DIRECTORY).output));
        if (entries.length > 10_000_000) throw new Smb2Error(0xc000009a, `readdir ${path}: more than 10 million entries`);
      }
    } finally {
      await this._close(fileId, path).catch(() => {});
    }
    const named = entries.filter((e) => e.name !== '.' && e.name !== '..');
    if (!opts.withFileTypes) return named.map((e) => e.name);
    return named.map((e) => {
      const stats = statsOf(e);
      return { name: e.name, path, stats, isFile: stats.isFile, isDirectory: stats.isDirectory };
    });
  }

  /** Removes a file or an empty directory; `recursive` empties a directory first; `force` ignores a
   * missing path. */
  async rm(path: string, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    try {
      if (opts.recursive) {
        const st = await this.stat(path);
        if (st.isDirectory()) {
          for (const e of await this.readdir(path, { withFileTypes: true })) {
            await this.rm(`${smbPath(path)}\\${e.name}`, { recursive: true });
          }
        }
      }
      // CREATE with DELETE, SET_INFO FileDispositionInformation, CLOSE: a non-empty directory gets
      // STATUS_DIRECTORY_NOT_EMPTY from the SET_INFO, as Windows answers it
      await this.#openDoClose('rm', path, DELETE | FILE_READ_ATTRIBUTES, FILE_DISPOSITION.OPEN, 0, {
        command: SMB2_COMMAND.SET_INFO,
        build: (h) => encodeSmb2SetInfoRequest({ header: h, infoType: SMB2_INFO.FILE, infoClass: FILE_INFO.DISPOSITION, buffer: Uint8Array.of(1), fileId: SMB2_FILE_ID_RELATED }),
      });
    } catch (err) {
      if (opts.force && (err as Smb2Error).code === 'ENOENT') return;
      throw err;
    }
  }

  /** Renames `from` to `to` (share-relative), replacing an existing file there as fs.rename does. */
  async rename(from: string, to: string): Promise<void> {
    const buffer = encodeFileRenameInfo({ replaceIfExists: true, name: smbPath(to) });
    await this.#openDoClose('rename', from, DELETE | FILE_READ_ATTRIBUTES, FILE_DISPOSITION.OPEN, 0, {
      command: SMB2_COMMAND.SET_INFO,
      build: (h) => encodeSmb2SetInfoRequest({ header: h, infoType: SMB2_INFO.FILE, infoClass: FILE_INFO.RENAME, buffer, fileId: SMB2_FILE_ID_RELATED }),
    });
  }

  // ---- handle operations (Smb2FileHandle calls these) ------------------------------------------

  /** @internal */
  async _close(fileId: Smb2FileId, path: string): Promise<void> {
    const res = await this.#one(SMB2_COMMAND.CLOSE, (h) => encodeSmb2CloseRequest({ header: h, fileId }));
    Smb2Client.#check(res, `close ${path}`);
    decodeSmb2CloseResponse(res);
  }

  /** @internal */
  async _queryAll(fileId: Smb2FileId, path: string): Promise<FileStat> {
    const res = await this.#one(SMB2_COMMAND.QUERY_INFO, this.#queryAllItem(fileId).build);
    Smb2Client.#check(res, `stat ${path}`);
    return decodeFileAllInfo(decodeSmb2OutputResponse(res, SMB2_COMMAND.QUERY_INFO).output);
  }

  /** @internal */
  async _setInfo(fileId: Smb2FileId, infoClass: number, buffer: Uint8Array, path: string): Promise<void> {
    const res = await this.#one(SMB2_COMMAND.SET_INFO, (h) => encodeSmb2SetInfoRequest({ header: h, infoType: SMB2_INFO.FILE, infoClass, buffer, fileId }));
    Smb2Client.#check(res, `set info ${path}`);
  }

  /** @internal */
  async _flush(fileId: Smb2FileId, path: string): Promise<void> {
    const res = await this.#one(SMB2_COMMAND.FLUSH, (h) => encodeSmb2FlushRequest({ header: h, fileId }));
    Smb2Client.#check(res, `sync ${path}`);
  }

  /** Runs `count` pieces with at most `window` in flight; resolves in order with each piece's
   * result; a short piece (`done`) stops the ones after it from starting. */
  async #pipeline(count: number, piece: (i: number) => Promise<number>, short: (i: number, n: number) => boolean): Promise<number[]> {
    const results: number[] = new Array(count);
    let next = 0, stop = false;
    let failure: unknown;
    const worker = async () => {
      while (!stop && next < count) {
        const i = next++;
        try {
          results[i] = await piece(i);
          if (short(i, results[i]!)) stop = true;
        } catch (err) {
          stop = true;
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#o.window, count) }, worker));
    if (failure) throw failure;
    return results;
  }

  #channel(): number {
    return this.dialect >= SMB2_DIALECT.SMB302 ? SMB2_CHANNEL.RDMA_V1_INVALIDATE : SMB2_CHANNEL.RDMA_V1;
  }

  /** @internal: reads into `into` from `position`, split at MaxReadSize and pipelined; the bytes
   * read (short only at the end of the file). */
  _readInto(h: Smb2FileHandle, into: Uint8Array, position: number): Promise<number> {
    return this.#split(into, this.maxRead, (piece, at) => this.#readPiece(h, piece, position + at));
  }

  /**
   * A registration for one READ or WRITE by RDMA: a transfer buffer of the pool (a whole
   * ArrayBuffer: what verbs can register; the caller's memory is never exposed to the server),
   * registered for this I/O only, and the descriptor of its first `length` bytes.
   */
  #register(length: number, access: 'read' | 'write'): { buf: Uint8Array; descriptors: BufferDescriptor[]; release(): void } {
    const view = this.#ioBuffers.take(length);
    const whole = new Uint8Array(view.buffer, 0, view.buffer.byteLength);
    let reg;
    try {
      reg = this.#wire.rdma!.registerBuffer(whole, access);
    } catch (err) {
      this.#ioBuffers.give(view);
      throw err;
    }
    const d = reg.descriptors[0]!;
    return {
      buf: view, descriptors: [{ ...d, length }],
      release: () => { reg.release(); this.#ioBuffers.give(view); },
    };
  }

  async #readPiece(h: Smb2FileHandle, into: Uint8Array, position: number): Promise<number> {
    const reg = this.#wire.rdma && into.length >= this.#o.rdmaThreshold ? this.#register(into.length, 'write') : undefined;
    try {
      const res = await this.#one(SMB2_COMMAND.READ, (hd) => encodeSmb2ReadRequest({
        header: hd, length: into.length, offset: BigInt(position), fileId: h.fileId, rdma: reg && { channel: this.#channel(), descriptors: reg.descriptors },
      }), smb2CreditCharge(into.length));
      const st = Smb2Client.#check(res, `read ${h.path}`, STATUS_END_OF_FILE, STATUS_BUFFER_OVERFLOW);
      if (st.status === STATUS_END_OF_FILE) return 0;
      const r = decodeSmb2ReadResponse(res);
      if (reg) {
        // the server RDMA-wrote the bytes before it answered: the response arrives after them
        if (r.data.length !== 0 || r.dataRemaining > into.length) throw new Smb2Error(0xc000000d, `read ${h.path}: a response placing ${r.dataRemaining} bytes (${r.data.length} inline) into ${into.length}`);
        into.set(reg.buf.subarray(0, r.dataRemaining));
        this.stats.rdmaBytesRead += r.dataRemaining;
        return r.dataRemaining;
      }
      if (r.data.length > into.length) throw new Smb2Error(0xc000000d, `read ${h.path}: ${r.data.length} bytes for a read of ${into.length}`);
      into.set(r.data);
      this.stats.inlineBytesRead += r.data.length;
      return r.data.length;
    } finally {
      reg?.release();
    }
  }

  /** @internal: writes `from` at `position`, split at MaxWriteSize and pipelined. */
  _writeFrom(h: Smb2FileHandle, from: Uint8Array, position: number): Promise<number> {
    return this.#split(from, this.maxWrite, (piece, at) => this.#writePiece(h, piece, position + at));
  }

  /** `buf` in pieces of `size` bytes, `window` of them in flight; the bytes done in order up to the
   * first piece that came back short (the end of the file, a short write): none after it counts. */
  async #split(buf: Uint8Array, size: number, io: (piece: Uint8Array, at: number) => Promise<number>): Promise<number> {
    if (buf.length === 0) return 0;
    const count = Math.ceil(buf.length / size);
    const want = (i: number) => Math.min(size, buf.length - i * size);
    const results = await this.#pipeline(count, (i) => io(buf.subarray(i * size, i * size + want(i)), i * size), (i, n) => n < want(i));
    let total = 0;
    for (let i = 0; i < count; i++) {
      const n = results[i];
      if (n === undefined) break;
      total += n;
      if (n < want(i)) break;
    }
    return total;
  }

  async #writePiece(h: Smb2FileHandle, from: Uint8Array, position: number): Promise<number> {
    const reg = this.#wire.rdma && from.length >= this.#o.rdmaThreshold ? this.#register(from.length, 'read') : undefined;
    try {
      reg?.buf.set(from);
      const res = await this.#one(SMB2_COMMAND.WRITE, (hd) => encodeSmb2WriteRequest(reg
        ? { header: hd, offset: BigInt(position), fileId: h.fileId, data: new Uint8Array(0), rdma: { channel: this.#channel(), descriptors: reg.descriptors }, remainingBytes: from.length }
        : { header: hd, offset: BigInt(position), fileId: h.fileId, data: from }), smb2CreditCharge(from.length));
      Smb2Client.#check(res, `write ${h.path}`);
      const { count } = decodeSmb2WriteResponse(res);
      if (count > from.length) throw new Smb2Error(0xc000000d, `write ${h.path}: ${count} bytes written of ${from.length}`);
      if (reg) this.stats.rdmaBytesWritten += count;
      else this.stats.inlineBytesWritten += count;
      return count;
    } finally {
      reg?.release();
    }
  }
}

// ---- connecting ----------------------------------------------------------------------------------

function tcpWire(host: string, port: number, client: () => Smb2Client | undefined, timeoutMs: number): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tcpConnect({ host, port });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`TCP connect to ${host}:${port}: no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    const framer = new Smb2StreamFramer();
    framer.on('message', (m: Uint8Array) => client()?._onMessage(m));
    framer.on('error', (err: Error) => { client()?._fail(err); socket.destroy(); });
    framer.on('mpa', () => { client()?._fail(new Error('the server answered with an MPA header on a TCP connection')); socket.destroy(); });
    socket.on('data', (d) => framer.push(d));
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve({ send: (m) => { if (!socket.destroyed) socket.write(frameSmb2(m)); }, close: () => socket.destroy() });
    });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); client()?._fail(err); });
    socket.on('close', () => client()?._fail(Object.assign(new Error('the server closed the TCP connection'), { code: 'ECONNRESET' })));
  });
}

async function rdmaWire(o: Smb2ConnectOptions, client: () => Smb2Client | undefined): Promise<Wire> {
  const conn = await smbdConnect({ host: o.host, port: o.port, provider: o.provider });
  conn.on('message', (m: Uint8Array) => client()?._onMessage(m));
  conn.on('error', (err: Error) => client()?._fail(err));
  conn.on('close', () => client()?._fail(Object.assign(new Error('the SMB Direct connection closed'), { code: 'ECONNRESET' })));
  return {
    send: (m) => { conn.send(m).catch((err: Error) => client()?._fail(err)); },
    close: () => { void conn.close().catch(() => conn.destroy()); },
    rdma: conn, maxRdma: conn.negotiated!.maxReadWriteSize,
  };
}

/**
 * Connects, negotiates, authenticates and (with `share`) connects to the share. 'auto' tries SMB
 * Direct first and falls back to TCP (as Windows does), unless the SMB2 exchange itself failed.
 * A wrong password rejects with an Smb2Error of STATUS_LOGON_FAILURE (code EACCES).
 */
export async function connect(o: Smb2ConnectOptions): Promise<Smb2Client> {
  if (!o || typeof o.host !== 'string' || typeof o.username !== 'string' || typeof o.password !== 'string') {
    throw new TypeError('connect needs { host, username, password }');
  }
  const transport = o.transport ?? 'auto';
  if (transport !== 'rdma' && transport !== 'tcp' && transport !== 'auto') throw new TypeError(`transport must be 'rdma', 'tcp' or 'auto', got ${String(transport)}`);
  const attempt = async (kind: 'rdma' | 'tcp'): Promise<Smb2Client> => {
    let client: Smb2Client | undefined;
    const wire = kind === 'rdma' ? await rdmaWire(o, () => client) : await tcpWire(o.host, o.port ?? 445, () => client, o.timeoutMs ?? 60_000);
    try {
      client = new Smb2Client(wire, o);
      await client._start(o);
      return client;
    } catch (err) {
      client?._fail(err as Error);
      wire.close();
      throw err;
    }
  };
  if (transport !== 'auto') return attempt(transport);
  try {
    return await attempt('rdma');
  } catch (err) {
    if (err instanceof Smb2Error) throw err; // the server answered: TCP would answer the same
    debug('SMB Direct to %s failed (%s): trying TCP', o.host, (err as Error).message);
    return attempt('tcp');
  }
}

