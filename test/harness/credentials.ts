import { loadConfig } from '../../src/config';
import { loadTopology } from '../../src/topology/topology';

/** Azurite's published development key, which the test topology's storage accounts use. */
export const AZURITE_DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** The credential values in this environment: Azurite's key and whatever the topology's variables hold. */
export function credentialValues(env: NodeJS.ProcessEnv = process.env): string[] {
  const names = loadTopology(loadConfig(env).topologyPath, env).storage.flatMap((s) =>
    [s.accountKeyEnv, s.connectionStringEnv, s.sasTokenEnv].filter((n): n is string => n !== undefined),
  );
  const values = names.map((n) => env[n]).filter((v): v is string => v !== undefined && v.length >= 8);
  return [AZURITE_DEV_KEY, ...values];
}
