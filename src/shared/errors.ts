/**
 * The problems an operator can act on. Domain code throws VmhubError with one of these types; activities
 * and workflows turn it into a non-retryable Temporal ApplicationFailure of the same type.
 */
export const ERROR_TYPES = [
  'InvalidSource',
  'InvalidInput',
  'InvalidImage',
  'ManifestMismatch',
  'VersionConflict',
  'UnknownSddc',
  'SddcExists',
  'UnknownImage',
  'SourceChanged',
  'InvalidTopology',
  'InsufficientSpace',
  'DeployIncomplete',
  'NoAgent',
  'StorageMismatch',
  'VcenterLoginFailed',
  'VcenterNotConfigured',
  'VcenterMismatch',
  'InstantiateFailed',
  'InstantiateMismatch',
  'UnknownOperatorCheck',
  'StagingMissing',
  'ImageRetired',
  'DeployRunning',
  'RetireIncomplete',
  'NoTransferWorker',
  'UnsignedImage',
  'UntrustedSignature',
  'ProvenanceMismatch',
  'CertificateInvalid',
  'UnreferencedMember',
  'PolicyRefused',
  'NoSigningKey',
  'RolloutInProgress',
  'RolloutRefused',
  'RolloutHalted',
  'RolloutAborted',
  'NoPreviousVersion',
  'VersionNotInLibrary',
] as const;

export type ErrorType = (typeof ERROR_TYPES)[number];

/** A deploy refused by the version's signed provenance: final, whatever the source or the attempt. */
export const PROVENANCE_FAILURES: readonly ErrorType[] = ['UnsignedImage', 'UntrustedSignature', 'ProvenanceMismatch'];

/** Every retry policy names these: none of them can change by trying again. */
export const NON_RETRYABLE_ERROR_TYPES: string[] = [...ERROR_TYPES];

export class VmhubError extends Error {
  override name = 'VmhubError';
  constructor(
    readonly type: ErrorType,
    message: string,
  ) {
    super(message);
  }
}

export function isVmhubError(err: unknown): err is VmhubError {
  return err instanceof VmhubError;
}
