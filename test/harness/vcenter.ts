import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { VCENTER_ENV, type AgentVcenter } from '../../src/sddc/agent-vcenter';
import type { ContentLibrary } from '../../src/sddc/content-library';
import type { Credentials } from '../../src/sddc/vcenter-login';
import { tempDir } from '../images/build';

/**
 * An agent's own vCenter configuration for a vcsim on the loopback (self-signed, so no certificate check),
 * its login in private files as an operator would give it: the environment of a spawned agent.
 */
export function agentVcenterEnv(vcenter: string, login: Credentials): Record<string, string> {
  const dir = tempDir('vmhub-vc-login-');
  const files = { username: path.join(dir, 'username'), password: path.join(dir, 'password') };
  fs.writeFileSync(files.username, `${login.username}\n`, { mode: 0o600 });
  fs.writeFileSync(files.password, `${login.password}\n`, { mode: 0o600 });
  return {
    [VCENTER_ENV.url]: vcenter,
    [VCENTER_ENV.insecure]: '1',
    [VCENTER_ENV.usernameFile]: files.username,
    [VCENTER_ENV.passwordFile]: files.password,
  };
}

/** The same vCenter, for a test that connects to it itself. */
export function testVcenter(vcenter: string, credentials: Credentials): AgentVcenter {
  return { url: new URL(vcenter).href, tls: { kind: 'insecure' }, credentials };
}

/** An item's files as the vCenter serves them back through a download session: name → SHA-256. */
export async function itemDigests(library: ContentLibrary, itemId: string): Promise<Record<string, string>> {
  const { session, endpoints } = await library.downloadEndpoints(itemId);
  const digests: Record<string, string> = {};
  for (const [file, endpoint] of endpoints) {
    const hash = createHash('sha256');
    for await (const chunk of await library.rest.download(endpoint, file)) hash.update(chunk as Buffer);
    digests[file] = hash.digest('hex');
  }
  await library.endDownload(session);
  return digests;
}
