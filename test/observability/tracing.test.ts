import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, type NativeConnection, Worker } from '@temporalio/worker';
import { startTracing, type Tracing } from '../../src/observability/tracing';
import type { DeployResult } from '../../src/shared/deploy-input';
import { connectWorker } from '../../src/temporal/connection';
import { createAgentWorker, workflowSource } from '../../src/temporal/worker';
import { bundlerLogger } from '../../scripts/build-bundle';
import { until } from '../harness/worker-process';
import { isoImage } from '../images/build';
import { repositoryRoot, startWorld, type TestWorld } from '../helpers';

/**
 * One deploy, traced end to end on the real services: the client (with its interceptor), the control
 * worker and an SDDC's agent all run in this process, whose tracer provider exports to memory.
 */
describe('traces', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let world: TestWorld;
  let agentConnection: NativeConnection;
  let agent: Worker;
  let agentRun: Promise<void>;
  const sddc = `trace-${randomUUID().slice(0, 6)}`;
  let deploy: WorkflowHandle;

  beforeAll(async () => {
    // Installed before any client or worker is made: they take the interceptors only while the process traces.
    tracing = startTracing('vmhub-control', { exporter })!;
    world = await startWorld();
    await world.deps.catalog.sddcs.add({
      name: sddc,
      dataCenter: 'dc-west',
      taskQueue: `sddc-${sddc}`,
      capacity: { cpus: 8, memoryMiB: 16384, diskGiB: 100 },
    });
    const datastore = fs.mkdtempSync(path.join(os.tmpdir(), 'vmhub-trace-'));
    agentConnection = await connectWorker(world.config.temporal);
    agent = await createAgentWorker(agentConnection, { ...world.config, datastore }, sddc);
    agentRun = agent.run();
    await until('the agent polling', async () => (await world.deps.temporal.recentPollers(`sddc-${sddc}`, 'activity')) > 0);
    isoImage(path.join(repositoryRoot(), 'traced.iso'), { volumeId: 'TRACED' });
    await world.client.workflow.execute('PublishImage', {
      args: [{ source: 'traced.iso', image: 'traced', version: '1.0.0' }],
      taskQueue: world.config.taskQueue,
      workflowId: `publish:traced:1.0.0`,
    });
    deploy = await world.client.workflow.start('DeployToSDDCs', {
      args: [{ image: 'traced', version: '1.0.0', sddcs: [sddc] }],
      taskQueue: world.config.taskQueue,
      workflowId: `deploy:traced:1.0.0:${randomUUID()}`,
    });
    const result = (await deploy.result()) as DeployResult;
    expect(result.results).toEqual([expect.objectContaining({ sddc, status: 'deployed' })]);
    await tracing.flush();
  });
  afterAll(async () => {
    agent.shutdown();
    await agentRun;
    await agentConnection.close();
    await world.close();
    await tracing.shutdown();
  });

  const named = (spans: ReadableSpan[], name: string) => {
    const found = spans.filter((s) => s.name === name);
    expect(found.map((s) => s.name)).toContain(name);
    return found[0];
  };

  it('follows the deploy in one trace from the client through the workflow and its batch to the agent', () => {
    const spans = exporter.getFinishedSpans();
    const start = named(spans, 'StartWorkflow:DeployToSDDCs');
    const trace = spans.filter((s) => s.spanContext().traceId === start.spanContext().traceId);
    const names = trace.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'RunWorkflow:DeployToSDDCs',
        'StartChildWorkflow:DeploySddcBatch',
        'RunWorkflow:DeploySddcBatch',
        'StartActivity:downloadImage',
        'RunActivity:downloadImage',
        'vmhub.download',
        'vmhub.verify',
      ]),
    );
    // Parent links intact: every span but the client's has its parent in the trace, and from the
    // agent's step the parents lead back to the client's span.
    const byId = new Map(trace.map((s) => [s.spanContext().spanId, s]));
    for (const span of trace)
      if (span !== start) expect([span.name, byId.has(span.parentSpanId ?? '')]).toEqual([span.name, true]);
    expect(start.parentSpanId).toBeUndefined();
    const chain: string[] = [];
    for (let at: ReadableSpan | undefined = named(trace, 'vmhub.download'); at; at = byId.get(at.parentSpanId ?? ''))
      chain.push(at.name);
    expect(chain).toEqual([
      'vmhub.download',
      'RunActivity:downloadImage',
      'StartActivity:downloadImage',
      'RunWorkflow:DeploySddcBatch',
      'StartChildWorkflow:DeploySddcBatch',
      'RunWorkflow:DeployToSDDCs',
      'StartWorkflow:DeployToSDDCs',
    ]);
  });

  it('says which version, SDDC and source a step was about, and nothing that could be a secret', () => {
    const spans = exporter.getFinishedSpans();
    const download = named(spans, 'vmhub.download');
    expect(download.attributes).toMatchObject({
      'vmhub.image': 'traced',
      'vmhub.version': '1.0.0',
      'vmhub.sddc': sddc,
      'vmhub.location': 'west-replica',
      'vmhub.bytes': expect.any(Number),
    });
    expect(download.resource.attributes['service.name']).toBe('vmhub-control');
    // The publish's steps are traced too: staging with its source reads, and the commit.
    expect(spans.map((s) => s.name)).toEqual(expect.arrayContaining(['vmhub.stage', 'vmhub.source.read', 'vmhub.commit']));
    const values = spans.flatMap((s) => Object.values(s.attributes).map(String));
    expect(values.filter((v) => /sig=|sv=|password|AccountKey|https?:\/\//i.test(v))).toEqual([]);
  });

  it('replays the traced runs on workflow code with the tracing interceptors and without them', async () => {
    const history = await deploy.fetchHistory();
    const batchId = history.events
      ?.map((e) => e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId)
      .find((id): id is string => Boolean(id));
    expect(batchId).toBeDefined();
    const batchHistory = await world.client.workflow.getHandle(batchId!).fetchHistory();
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../src/workflows'),
      logger: bundlerLogger({ silent: true }),
    });
    for (const source of [workflowSource(), { workflowBundle: { code } }]) {
      await Worker.runReplayHistory(source, history, deploy.workflowId);
      await Worker.runReplayHistory(source, batchHistory, batchId);
    }
  });
});
