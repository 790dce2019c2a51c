import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { withoutSourcesText } from '../../src/temporal/workflow-source-map';
import { publishActivities, runWorker, startTestEnvironment } from '../harness/mock-activities';

/** What a stuck run shows an operator (the Web UI's stack trace), from the bundle every worker runs. */
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment();
}, 120_000);
afterAll(() => env?.teardown());

function inlineSourceMap(bundle: string): { sources: string[]; sourcesContent?: unknown } {
  const data = /sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)/.exec(bundle);
  if (!data) throw new Error('the bundle has no inline source map');
  return JSON.parse(Buffer.from(data[1], 'base64').toString('utf8')) as { sources: string[]; sourcesContent?: unknown };
}

describe('a workflow stack trace', () => {
  it('comes from bundles made with a source map that leaves out the sources text, at start as ahead of time', () => {
    expect(withoutSourcesText({ mode: 'development', devtool: 'inline-source-map' })).toEqual({
      mode: 'development',
      devtool: 'inline-nosources-source-map',
    });
  });

  it('names the TypeScript file and line, from a bundle whose source map leaves out the sources text', async () => {
    const map = inlineSourceMap(fs.readFileSync(process.env.VMHUB_WORKFLOW_BUNDLE!, 'utf8'));
    expect(map.sources).toEqual(expect.arrayContaining([expect.stringMatching(/src\/workflows\/publish-image\.ts$/)]));
    expect(map.sourcesContent).toBeUndefined();

    let entered!: () => void;
    const inProbe = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const activities = publishActivities([]);
    const probeSource = activities.probeSource!;
    const trace = await runWorker(
      env,
      {
        ...activities,
        probeSource: async (...args: Parameters<typeof probeSource>) => {
          entered();
          await released;
          return probeSource(...args);
        },
      },
      async (taskQueue) => {
        const handle = await env.client.workflow.start('PublishImage', {
          args: [{ source: 'app.ova', image: 'app', version: '1.0.0' }],
          taskQueue,
          workflowId: randomUUID(),
        });
        try {
          await inProbe;
          return await handle.query<string>('__stack_trace');
        } finally {
          release();
          // The run's own outcome is not what this test is about, and must not hide a failed query.
          await handle.result().catch(() => undefined);
        }
      },
    );
    expect(trace).toMatch(/src\/workflows\/publish-image\.ts:\d+:\d+/);
  });
});
