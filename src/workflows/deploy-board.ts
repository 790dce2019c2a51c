import { setCurrentDetails } from '@temporalio/workflow';
import type { DeployProgress, SddcPhase, SddcProgress } from '../shared/deploy-input';
import { deployingLine, detailsText, sddcTable } from './current-details';

/** The run's current details in the Web UI: a headline, then where each SDDC stands. */
export class Board {
  constructor(
    readonly headline: string,
    readonly progress: DeployProgress,
  ) {}

  /** Moves an SDDC to its next phase and shows it. */
  phase(p: SddcProgress, phase: SddcPhase): void {
    p.phase = phase;
    this.show();
  }

  show(): void {
    const rows = Object.values(this.progress);
    const ended = rows.flatMap((r) => (r.status ? [{ sddc: r.sddc, status: r.status }] : []));
    const line = deployingLine(ended, rows.length, ended.length === rows.length);
    setCurrentDetails(detailsText(this.headline, line, sddcTable(rows)));
  }
}
