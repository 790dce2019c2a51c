import { VmhubError } from '../shared/errors';
import { ENV_NAME, isLoopbackUrl } from '../shared/target-kinds/content-library';
import type { ContentLibraryTarget } from '../shared/target-kinds/kind';

export interface Credentials {
  username: string;
  password: string;
}

/** vcsim's own login, which it takes when it was started without one: like Azurite's key, only for the loopback. */
const SIMULATOR_LOGIN: Credentials = { username: 'user', password: 'pass' };

/**
 * The vCenter login from the agent's environment. `forbidden` names variables the agent must never send
 * to a vCenter (its storage credentials), whatever the catalog asks for.
 */
export function credentialsFor(
  target: ContentLibraryTarget,
  env: NodeJS.ProcessEnv,
  forbidden: ReadonlySet<string> = new Set(),
): Credentials {
  for (const key of [target.usernameEnv, target.passwordEnv]) {
    if (!ENV_NAME.test(key))
      throw new VmhubError('InvalidInput', `a vCenter login is read only from VMHUB_VC_* variables, not ${key}`);
    if (forbidden.has(key))
      throw new VmhubError('InvalidInput', `${key} holds a storage credential; it is never sent to a vCenter`);
  }
  const username = env[target.usernameEnv];
  const password = env[target.passwordEnv];
  if (username && password) return { username, password };
  if (!username && !password && isLoopbackUrl(new URL(target.vcenter))) return SIMULATOR_LOGIN;
  throw new VmhubError(
    'InvalidInput',
    `no vCenter login for ${target.vcenter}: set ${target.usernameEnv} and ${target.passwordEnv} in the agent's environment`,
  );
}
