// The published entry points resolve from the built dist/ (npm test builds first), the way a
// user's `import ... from 'smbdirect/framing'` does.
import assert from 'node:assert/strict';
import { it } from 'node:test';

it("'smbdirect/framing' and 'smbdirect' load from dist/", async () => {
  const framing = await import('smbdirect/framing');
  const root = await import('smbdirect');
  assert.equal(typeof framing.decodeDataTransfer, 'function');
  assert.equal(typeof framing.Fragmenter, 'function');
  assert.equal(root.SmbDirectProtocolError, framing.SmbDirectProtocolError);
  assert.equal(root.framing.encodeMpaRequest, framing.encodeMpaRequest);
  const err = (() => { try { framing.decodeDataTransfer(new Uint8Array(3)); } catch (e) { return e; } })();
  assert.ok(err instanceof root.SmbDirectProtocolError);
  assert.equal((err as { code: string }).code, 'ERR_SMBD_SHORT_MESSAGE');
});

it("'smbdirect/native' loads from dist/ and finds the addon from there", async () => {
  const native = await import('smbdirect/native');
  assert.equal(typeof native.available, 'boolean');
  assert.equal(typeof native.status().addon, 'boolean');
  // dist/native/index.js locates binding.gyp two levels up and loads build/ or prebuilds/
  if (!native.available) assert.ok(native.reason);
  else assert.equal(typeof native.listDevices, 'function');
});

it("'smbdirect/completion' and the verbs provider load from dist/", async () => {
  const completion = await import('smbdirect/completion');
  const providers = await import('smbdirect/providers');
  assert.equal(typeof completion.CompletionPool, 'function');
  assert.equal(typeof completion.WrRing, 'function');
  assert.equal(typeof providers.createVerbsProvider, 'function');
  assert.equal(typeof providers.defaultProvider, 'function');
});

it("'smbdirect/smb2' loads from dist/: createServer, Smb2Error with status and a Node-style code, NTSTATUS", async () => {
  const smb2 = await import('smbdirect/smb2');
  assert.equal(typeof smb2.createServer, 'function');
  const e = new smb2.Smb2Error(smb2.NTSTATUS.STATUS_OBJECT_NAME_NOT_FOUND);
  assert.equal(e.status, 0xc0000034);
  assert.equal(e.code, 'ENOENT');
  assert.match(e.message, /STATUS_OBJECT_NAME_NOT_FOUND/);
  assert.equal(new smb2.Smb2Error(smb2.NTSTATUS.STATUS_CANCELLED).code, 'STATUS_CANCELLED');
});
