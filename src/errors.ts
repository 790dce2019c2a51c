/**
 * The problems an operator can act on (SPEC §7). Domain code throws VmhubError with one of these types;
 * activities and workflows turn it into a non-retryable Temporal ApplicationFailure of the same type.
 */
export type ErrorType =
  | 'InvalidSource'
  | 'InvalidInput'
  | 'InvalidImage'
  | 'ManifestMismatch'
  | 'VersionConflict'
  | 'UnknownSddc'
  | 'UnknownImage'
  | 'SourceChanged'
  | 'InvalidTopology';

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
