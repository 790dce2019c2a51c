import type { OvfTrustConfig } from '../config';
import { openNoFollow, O_RDONLY } from '../datastore/files';
import type { ImageMetadata, InspectOptions } from '../images/inspect';
import { loadTrustedCas } from '../images/ovf-certificate';
import { VmhubError } from '../shared/errors';
import { formatOf, type ImageFormat } from '../shared/image-format';
import { ovfPolicyRefusal, type OvfPolicy } from '../shared/ovf-policy';
import { hashPool } from '../storage/hashing';

/**
 * An agent's own OVF policy (VMHUB_REQUIRE_MANIFEST, VMHUB_REQUIRE_OVF_CERT, its own
 * VMHUB_OVF_TRUSTED_CA_FILE): judged on what the agent's inspection of the bytes it holds found, never on
 * the catalog's record, which anyone with catalog write access could edit.
 */
export interface AgentOvfPolicy {
  policy: OvfPolicy;
  inspect: InspectOptions;
}

/** The agent's policy from its configuration; undefined when it demands nothing. */
export async function agentOvfPolicy(config: OvfTrustConfig): Promise<AgentOvfPolicy | undefined> {
  const policy = { requireManifest: config.requireManifest, requireVerifiedCertificate: config.requireVerifiedCertificate };
  if (!policy.requireManifest && !policy.requireVerifiedCertificate) return undefined;
  return { policy, inspect: { trustedCas: await loadTrustedCas(config.trustedCaFile) } };
}

/** PolicyRefused when the image this agent inspected does not satisfy its policy; an ISO has no OVF to judge. */
export function checkAgentPolicy(
  ovf: AgentOvfPolicy | undefined,
  format: ImageFormat,
  metadata: ImageMetadata | undefined,
  sddc: string,
): void {
  if (!ovf || !formatOf(format).inspectOnDeploy) return;
  const refusal = ovfPolicyRefusal(ovf.policy, metadata);
  if (refusal) throw new VmhubError('PolicyRefused', `the agent of ${sddc} ${refusal}`);
}

/** The metadata of an image already on disk, read again by the inspector (for a copy found present). */
export async function inspectFile(
  file: string,
  format: ImageFormat,
  inspect: InspectOptions,
): Promise<ImageMetadata | undefined> {
  const handle = await openNoFollow(file, O_RDONLY);
  try {
    const stream = await hashPool().openStream(format, inspect);
    try {
      await stream.pushFile(handle.fd, 0, (await handle.stat()).size);
      const { metadata, invalid } = await stream.finish();
      if (invalid) throw invalid;
      return metadata;
    } finally {
      // The thread lets go of the descriptor before the handle closes.
      await stream.close();
    }
  } finally {
    await handle.close();
  }
}
