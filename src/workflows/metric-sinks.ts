import { proxySinks, type Sinks } from '@temporalio/workflow';

/**
 * What workflows count in the worker's metrics (src/observability/metrics.ts). A sink call is no command:
 * histories do not change, and a replay does not count again.
 */
export interface MetricSinks extends Sinks {
  vmhubMetrics: {
    rolloutWaveEnded(outcome: 'passed' | 'halted' | 'aborted'): void;
  };
}

export const { vmhubMetrics } = proxySinks<MetricSinks>();
