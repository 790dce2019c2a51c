import { VmhubError, type ErrorType } from '../../src/shared/errors';

/** The VmhubError `fn` throws, checked to be of `type`; fails the test when `fn` throws nothing. */
export function typedError(type: ErrorType, fn: () => unknown): VmhubError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VmhubError);
    expect((err as VmhubError).type).toBe(type);
    return err as VmhubError;
  }
  throw new Error(`expected a ${type} failure`);
}
