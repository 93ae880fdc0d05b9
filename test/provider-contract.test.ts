// The provider contract suite (test/providers/contract.ts) against iwarp-tcp on loopback. The same
// cases run against verbs on rxe0 and siw0 in the VM (test/softroce/provider-contract.test.ts).
import { createIwarpProvider } from '../src/providers/index.js';
import { contractSuite } from './providers/contract.js';

// small queues, so that ERR_QUEUE_FULL and the unsignaled run cost little
const maxSendWr = 64, maxRecvWr = 64;

contractSuite('iwarp-tcp on 127.0.0.1', () => ({ provider: createIwarpProvider({ maxSendWr, maxRecvWr }), host: '127.0.0.1' }), {
  maxSendWr, maxRecvWr,
  readDepth: 16, // IwarpOptions ird / ord defaults
  privateDataPadded: false,
  responderResourcesLowered: false, // its own IRD as advertised
  peerOfDestroy: 'error', // the Terminate: ERR_IWARP_TERMINATED (or the reset after it)
  remoteInvalidation: 'reported',
  rejectEnds: 'silent',
  oneReadSge: true,
});
