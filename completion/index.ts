// smbdirect/completion: completion queues per CPU, QP -> CQ placement, the wr_id registry and
// batch dispatch (docs/completion.md).
export { CompletionPool, type CompletionPoolOptions, type CompletionSink, type CqPlacement, type CqSetStats } from './pool.js';
export { WR_KIND, WrRing, isRecvWrId, nativeWrId, seqOf, type WrKindCode } from './wr-ring.js';
