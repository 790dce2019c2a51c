/**
 * What an OVF image's signature is worth, and what an SDDC demands of it. Plain data and pure functions:
 * the control plane judges a version by its catalog record, an agent by what its own inspection of the
 * bytes it holds found, with the same rules.
 */
export type CertificateStatus = 'verified' | 'untrusted' | 'failed' | 'none';

/** The catalog's record of an OVF package's certificate (`metadata.certificate` of an OVA). */
export interface OvfCertificateVerdict {
  status: CertificateStatus;
  /** The signing certificate's subject and issuer, one line each. */
  subject?: string;
  issuer?: string;
  /** When the signing certificate expires, ISO 8601. */
  notAfter?: string;
  /** Why it is not verified. */
  reason?: string;
}

/** What the rules read of an image's metadata (src/images/inspect.ts): an OVA's archive and certificate. */
export interface InspectedImage {
  kind: string;
  archive?: { manifest?: string; files: Array<{ name: string; role: string; manifest: string }> };
  certificate?: OvfCertificateVerdict;
}

/** Set per SDDC (`vmhub sddc add/update`), or by an agent's own environment. */
export interface OvfPolicy {
  /** The image has the descriptor's manifest, and it lists every member but itself and the certificate. */
  requireManifest?: boolean;
  /** The manifest is signed by a certificate issued by a trusted CA (vCenter's OVF_STRICT_VERIFICATION). */
  requireVerifiedCertificate?: boolean;
}

/** An OVA's certificate verdict; `none` for an image without a certificate or inspected before they were checked. */
export function certificateOf(metadata: InspectedImage | undefined): OvfCertificateVerdict {
  return metadata?.certificate ?? { status: 'none' };
}

/** `vmhub show`'s line for a certificate verdict. */
export function describeCertificate(c: OvfCertificateVerdict): string {
  if (c.status === 'none') return 'none';
  const facts = [c.subject && `subject ${c.subject}`, c.notAfter && `expires ${c.notAfter}`, c.reason].filter(Boolean);
  return `${c.status}${facts.length > 0 ? ` (${facts.join('; ')})` : ''}`;
}

/** `vmhub sddc show`'s line for a policy. */
export function describeOvfPolicy(policy: OvfPolicy | undefined): string {
  const demands = [
    policy?.requireManifest && 'a manifest listing every member',
    policy?.requireVerifiedCertificate && 'a verified OVF certificate',
  ].filter(Boolean);
  return demands.length > 0 ? `requires ${demands.join(' and ')}` : 'none';
}

/**
 * Why an image does not satisfy a policy at `now`, or undefined when it does. The policy is about OVF
 * templates: an ISO has no manifest or certificate to require. A verdict recorded at publish is judged
 * again for expiry: a signing certificate past its notAfter verifies nothing any more.
 */
export function ovfPolicyRefusal(
  policy: OvfPolicy | undefined,
  metadata: InspectedImage | undefined,
  now = new Date(),
): string | undefined {
  if (!policy?.requireManifest && !policy?.requireVerifiedCertificate) return undefined;
  if (metadata?.kind === 'iso') return undefined;
  if (metadata?.archive === undefined) return 'requires an OVF manifest or certificate, and the image has no inspected archive';
  // A certificate signs the manifest only: a member the manifest does not list is vouched for by nobody,
  // so requiring a verified certificate requires a manifest listing every member too (OVF_STRICT_VERIFICATION).
  if (policy.requireManifest || policy.requireVerifiedCertificate) {
    const { manifest, files } = metadata.archive;
    if (manifest === undefined) return 'requires a manifest, and the image has none';
    const unlisted = files.filter((f) => f.role !== 'manifest' && f.role !== 'certificate' && f.manifest !== 'verified');
    if (unlisted.length > 0) {
      return `requires a manifest that lists every member, and ${manifest} lacks ${unlisted.map((f) => f.name).join(', ')}`;
    }
  }
  const cert = certificateOf(metadata);
  if (policy.requireVerifiedCertificate && cert.status !== 'verified') {
    return `requires a verified OVF certificate, and the image's is ${describeCertificate(cert)}`;
  }
  // A verdict without notAfter was not recorded by judgeChain: it cannot be shown still valid.
  if (policy.requireVerifiedCertificate && !(cert.notAfter !== undefined && now <= new Date(cert.notAfter))) {
    return `requires a verified OVF certificate, and the image's is not valid now (${describeCertificate(cert)})`;
  }
  return undefined;
}
