import { cancellationSignal, heartbeat } from '@temporalio/activity';
import { findOperatorCheck, runOperatorCheck } from '../deploy/operator-check';
import { VmhubError } from '../shared/errors';
import { withFailures } from '../shared/failures';
import type { GateCheckResult, OperatorCheckInput } from '../shared/health-gate';
import { validateImageName, validateSddcName, validateVersion } from '../shared/names';
import type { PublishDeps } from './publish';
import { keepBeating } from './keep-beating';

/** The control worker's side of a health gate: the operator checks its VMHUB_OPERATOR_CHECKS_FILE defines. */
export function createOperatorCheckActivities({ config }: Pick<PublishDeps, 'config'>) {
  return {
    /**
     * Runs the named operator check on the gate's VM: its verdict is a result (a failed check is an
     * answer, not a failure); an unknown name is UnknownOperatorCheck. A cancel stops the check.
     */
    async runOperatorCheck(input: OperatorCheckInput): Promise<GateCheckResult> {
      return withFailures(async () => {
        validateSddcName(input.sddc);
        validateImageName(input.image);
        validateVersion(input.version);
        if (typeof input.vm !== 'string' || typeof input.item?.itemId !== 'string')
          throw new VmhubError('InvalidInput', 'an operator check needs the item and the VM it checks');
        const spec = findOperatorCheck(config.operatorChecksFile, String(input.check));
        const signal = cancellationSignal();
        return keepBeating(
          () => runOperatorCheck(spec, input, { signal }),
          () => heartbeat({ check: input.check, sddc: input.sddc }),
        );
      });
    },
  };
}
