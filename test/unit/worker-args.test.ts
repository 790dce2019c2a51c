import { loadConfig } from '../../src/config';
import { AGENT_USAGE, parseWorkerArgs } from '../../src/temporal/worker';

describe('worker arguments', () => {
  it('serves both control-plane queues unless --only names one', () => {
    expect(parseWorkerArgs(['control'])).toEqual({ role: 'control', sddc: undefined });
    expect(parseWorkerArgs(['control', '--only', 'transfer'])).toEqual({ role: 'control', sddc: undefined, only: 'transfer' });
    expect(parseWorkerArgs(['--only', 'control', 'control'])).toEqual({ role: 'control', sddc: undefined, only: 'control' });
    expect(parseWorkerArgs(['agent', 'east-1'])).toEqual({ role: 'agent', sddc: 'east-1' });
  });

  it('an agent without an SDDC name is told how to name one', () => {
    expect(() => parseWorkerArgs(['agent'])).toThrow(AGENT_USAGE);
    expect(AGENT_USAGE).toContain('npm run agent -- east-1');
    expect(() => parseWorkerArgs(['agent', '--only', 'control'])).toThrow(AGENT_USAGE);
  });

  it('refuses an --only that names no queue', () => {
    expect(() => parseWorkerArgs(['control', '--only', 'agents'])).toThrow('--only takes "control" or "transfer", got "agents"');
    expect(() => parseWorkerArgs(['control', '--only'])).toThrow('--only takes');
  });

  it('puts transfers on the control queue name with -transfer', () => {
    expect(loadConfig({}).transferTaskQueue).toBe('vm-images-transfer');
    expect(loadConfig({ VMHUB_TASK_QUEUE: 'images-prod' }).transferTaskQueue).toBe('images-prod-transfer');
  });
});
