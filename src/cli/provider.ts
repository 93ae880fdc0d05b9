// --provider: auto (the default provider for the address), verbs, or iwarp-tcp.
import type { ProviderChoice } from '../smbdirect/server.js';
import { UsageError } from './args.js';

export const PROVIDER_HELP = 'auto (default: verbs where an active RDMA port serves the address, else iwarp-tcp), verbs, iwarp-tcp';

export function providerOption(text: string | undefined): ProviderChoice | undefined {
  if (text === undefined || text === 'auto') return undefined;
  if (text === 'verbs' || text === 'iwarp-tcp') return text;
  throw new UsageError(`--provider: '${text}' is not auto, verbs or iwarp-tcp`);
}
