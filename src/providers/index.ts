// smbdirect/providers: the RDMA providers behind the SMB Direct layer.
export type {
  Access, Completion, CompletionOpcode, ConnectOptions, MemoryRegion, PostSendOptions, RdmaEndpoint, RdmaListener,
  RdmaProvider, Sge,
} from './types.js';
export { PROVIDER_ERROR_CODES, RdmaError, type ProviderErrorCode, type RdmaErrorCode } from './errors.js';
export { IwarpEndpoint, TerminateError, type IwarpState } from './iwarp/endpoint.js';
export { MpaRejectedError, createIwarpProvider, iwarpOptionsForNeeds, upgradeToRdma, type IwarpOptions, type UpgradeOptions } from './iwarp/provider.js';
export { Smb2StreamFramer, frameSmb2, startsMpaRequest } from './stream.js';
export {
  VerbsEndpoint, WINDOW_SLOTS, checkDeviceLimits, createVerbsProvider, verbsOptionsForNeeds, type VerbsOptions, type VerbsProvider, type VerbsState,
} from './verbs/provider.js';
export { defaultProvider, verbsCandidate, type ChosenProvider, type DefaultProviderOptions } from './default.js';
export { VerbsWorkerPool, createWorkerPool, type WorkerPoolOptions, type WorkerStats } from './verbs/workers.js';
export type { ConnectionHandler, WorkerContext } from './verbs/worker.js';
