// The SMB2 layer's decoders (framing/smb2/): the first byte picks one, the rest is its input.
// 0: decodeSmb2NegotiateRequest (+ splitSmb2Compound), 1: decodeSmb2NegotiateResponse and what the
// client decodes (READ/WRITE/CREATE responses, directory entries, FileAllInformation),
// 2: decodeSpnego, 3: NTLMSSP (NEGOTIATE / CHALLENGE / AUTHENTICATE by MessageType), 4: the other
// requests a server decodes (SESSION_SETUP, TREE_CONNECT, IOCTL + VALIDATE_NEGOTIATE_INFO, CREATE, CLOSE,
// FLUSH, LOCK, CANCEL, OPLOCK_BREAK, a TRANSFORM_HEADER, a security descriptor), each tried on the same bytes. What decodes
// obeys the rules checked, and a NEGOTIATE request's fields survive encode + decode.
import { smb2 } from '../../framing/index.js';
import { check, decode } from '../lib/oracle.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const input = data.subarray(1);
  switch (data[0]! % 5) {
    case 0: {
      decode('splitSmb2Compound', () => smb2.splitSmb2Compound(input));
      const r = decode('decodeSmb2NegotiateRequest', () => smb2.decodeSmb2NegotiateRequest(input));
      if (!r) return;
      check(r.dialects.length > 0 && r.dialects.length <= smb2.MAX_DIALECTS, `${r.dialects.length} dialects accepted`);
      check(!r.dialects.includes(0x311) || r.preauthIntegrity !== undefined, '3.1.1 accepted without preauth integrity');
      const again = decode('decodeSmb2NegotiateRequest(encode(...))', () => smb2.decodeSmb2NegotiateRequest(smb2.encodeSmb2NegotiateRequest({
        dialects: r.dialects, securityMode: r.securityMode, capabilities: r.capabilities, clientGuid: r.clientGuid, contexts: r.contexts,
      })));
      check(again && hex(Uint8Array.from(again.dialects)) === hex(Uint8Array.from(r.dialects)) && again.contexts.length === r.contexts.length, 'a NEGOTIATE request does not survive encode + decode');
      return;
    }
    case 1: {
      const r = decode('decodeSmb2NegotiateResponse', () => smb2.decodeSmb2NegotiateResponse(input));
      if (r) check(r.securityBuffer.byteOffset >= input.byteOffset && r.securityBuffer.byteOffset + r.securityBuffer.length <= input.byteOffset + input.length, 'a security buffer outside the PDU');
      // what the client decodes of a server's responses
      const rd = decode('decodeSmb2ReadResponse', () => smb2.decodeSmb2ReadResponse(input));
      if (rd) check(rd.data.byteOffset + rd.data.length <= input.byteOffset + input.length, 'READ data outside the PDU');
      decode('decodeSmb2WriteResponse', () => smb2.decodeSmb2WriteResponse(input));
      decode('decodeSmb2CreateResponse', () => smb2.decodeSmb2CreateResponse(input));
      const entries = decode('decodeDirectoryEntries', () => smb2.decodeDirectoryEntries(smb2.FILE_INFO.ID_BOTH_DIRECTORY, input));
      if (entries) check(entries.reduce((n, e) => n + 104 + 2 * e.name.length, 0) <= input.length * 1.01 + 104, 'directory entries larger than their buffer');
      const all = decode('decodeFileAllInfo', () => smb2.decodeFileAllInfo(input));
      if (all) check(100 + 2 * all.name.length <= input.length, 'a FileAllInformation name past its buffer');
      return;
    }
    case 2: {
      const t = decode('decodeSpnego', () => smb2.decodeSpnego(input));
      if (t?.kind === 'init') check(t.mechTypes.length > 0, 'a NegTokenInit without mechTypes accepted');
      if (t?.kind === 'resp' && t.negState !== undefined) check(t.negState <= 3, `negState ${t.negState} accepted`);
      return;
    }
    case 4: {
      const ss = decode('decodeSmb2SessionSetupRequest', () => smb2.decodeSmb2SessionSetupRequest(input));
      if (ss) check(ss.securityBuffer.length === 0 || (ss.securityBuffer.byteOffset >= input.byteOffset + 88 && ss.securityBuffer.byteOffset + ss.securityBuffer.length <= input.byteOffset + input.length), 'a security buffer outside the PDU or inside the fixed part');
      const tc = decode('decodeSmb2TreeConnectRequest', () => smb2.decodeSmb2TreeConnectRequest(input));
      if (tc) check(tc.path.length > 0, 'an empty tree path accepted');
      const io = decode('decodeSmb2IoctlRequest', () => smb2.decodeSmb2IoctlRequest(input));
      if (io) {
        check(io.input.length <= smb2.MAX_IOCTL_BUFFER, 'an IOCTL input over the bound accepted');
        decode('decodeValidateNegotiateInfo', () => smb2.decodeValidateNegotiateInfo(io.input));
      }
      const cr = decode('decodeSmb2CreateRequest', () => smb2.decodeSmb2CreateRequest(input));
      if (cr) check(cr.contexts.length <= smb2.MAX_CREATE_CONTEXTS, `${cr.contexts.length} create contexts accepted`);
      decode('decodeSmb2CloseRequest', () => smb2.decodeSmb2CloseRequest(input));
      decode('decodeSmb2FlushRequest', () => smb2.decodeSmb2FlushRequest(input));
      const lk = decode('decodeSmb2LockRequest', () => smb2.decodeSmb2LockRequest(input));
      if (lk) check(88 + Math.max(0, lk.locks.length - 1) * 24 + 24 <= input.length, `${lk.locks.length} lock elements past the PDU accepted`);
      decode('decodeSmb2CancelRequest', () => smb2.decodeSmb2CancelRequest(input));
      decode('decodeSmb2OplockBreak', () => smb2.decodeSmb2OplockBreak(input, false));
      const tf = decode('decodeSmb2TransformHeader', () => smb2.decodeSmb2TransformHeader(input));
      if (tf) check(tf.originalMessageSize === input.length - 52 && tf.ciphertext.length >= 64, 'a TRANSFORM_HEADER whose size is not what follows accepted');
      const sd = decode('decodeSecurityDescriptor', () => smb2.decodeSecurityDescriptor(input));
      if (sd) {
        const again = decode('decodeSecurityDescriptor(encode(...))', () => smb2.decodeSecurityDescriptor(smb2.encodeSecurityDescriptor(sd)));
        check(again !== undefined && hex(smb2.encodeSecurityDescriptor(again)) === hex(smb2.encodeSecurityDescriptor(sd)), 'a security descriptor does not survive encode + decode');
      }
      return;
    }
    default: {
      const type = input.length >= 12 ? input.readUInt32LE(8) : 0;
      if (type === 1) decode('decodeNtlmNegotiate', () => smb2.decodeNtlmNegotiate(input));
      else if (type === 2) decode('decodeNtlmChallenge', () => smb2.decodeNtlmChallenge(input));
      else decode('decodeNtlmAuthenticate', () => smb2.decodeNtlmAuthenticate(input));
    }
  }
}
