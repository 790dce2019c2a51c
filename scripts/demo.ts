import path from 'node:path';
import type { Client } from '@temporalio/client';
import { Catalog } from '../src/catalog/catalog';
import { loadConfig, PROJECT_ROOT, type Config } from '../src/config';
import { deployOutcome, describeFailure, requireWorker, resultTable, startDeploy, startPublish } from '../src/cli/operations';
import type { PublishResult } from '../src/shared/publish-input';
import { sddcFromSeed } from '../src/sddc/registry';
import { startServices, stopServices } from '../src/dev-services/embedded';
import { spawnWorker, type WorkerProcess } from '../src/dev-services/worker-process';
import { agentVcenterEnv } from '../src/dev-services/vcsim';
import { ensureDevKeys } from '../src/provenance/dev-keys';
import { connectClient } from '../src/temporal/connection';
import { loadTopology } from '../src/topology/topology';
import { formatBytes, plural } from '../src/shared/units';
import { buildSampleOva } from './sample-ova';

/**
 * The main job (`npm run demo`): start the embedded services, the control worker and one agent
 * per default SDDC; register the SDDCs; publish a sample OVA, replicate it and deploy it to every SDDC;
 * print a summary. Keeps running until Ctrl-C, or with --exit stops what it started.
 */
const args = new Set(process.argv.slice(2));
const exitWhenDone = args.has('--exit');
const json = args.has('--json');
const IMAGE = 'photon';
const VERSION = '5.0.0';
const DISK_BYTES = Number(process.env.VMHUB_DEMO_DISK_MIB ?? 256) * 2 ** 20;

function say(line: string): void {
  if (!json || process.stderr.isTTY) process.stderr.write(`${line}\n`);
}

async function waitForWorkers(client: Client, config: Config): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      return await requireWorker(client, config);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  const config = loadConfig();
  const topology = loadTopology(config.topologyPath);

  say('starting the embedded services (first run: fetching the Temporal CLI, building FerretDB and vcsim) ...');
  const services = await startServices(config);
  for (const s of services) say(`  ${s.name.padEnd(20)} ${s.startedNow ? 'started' : 'already running'}  ${s.url}`);
  const ourServices = services.filter((s) => s.startedNow).map((s) => s.pid!);

  // Registered before their agents start: an agent refuses an SDDC the catalog does not know. The demo
  // sets them to the topology's values, so the vcsim endpoints of this run are the ones deployed to.
  const catalog = await Catalog.connect(config.mongodbUri);
  for (const s of topology.sddcs) await catalog.sddcs.add(sddcFromSeed(s));
  say(`registered SDDCs ${topology.sddcs.map((s) => `${s.name} (${s.dataCenter})`).join(', ')}`);

  const logs = path.join(config.dataDir, 'logs');
  // The worker signs with the dev key the services made, and each agent trusts its public key and is given its
  // own vCenter (its SDDC's vcsim), which the catalog's target is checked against.
  const keys = ensureDevKeys(config.dataDir);
  const signing = { VMHUB_SIGNING_KEY_FILE: process.env.VMHUB_SIGNING_KEY_FILE || keys.signingKey };
  const trusting = { VMHUB_TRUSTED_KEYS: process.env.VMHUB_TRUSTED_KEYS || keys.trusted };
  const workers: WorkerProcess[] = [spawnWorker(['control'], signing, path.join(logs, 'worker.log'))];
  for (const s of topology.sddcs)
    workers.push(
      spawnWorker(['agent', s.name], { ...trusting, ...agentVcenterEnv(config, s.name) }, path.join(logs, `agent-${s.name}.log`)),
    );
  say(
    `started the control worker and agents for ${topology.sddcs.map((s) => s.name).join(', ')} (logs in ${path.relative(PROJECT_ROOT, logs)}/)`,
  );

  const stopAll = async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await stopServices(config, ourServices);
  };

  const client = await connectClient(config.temporal);
  let ok = false;
  try {
    const sample = buildSampleOva(path.join(config.repositoryRoots[0], 'demo', `${IMAGE}-${VERSION}.ova`), DISK_BYTES);
    say(
      `sample OVA ${path.relative(PROJECT_ROOT, sample.path)} (${formatBytes(sample.sizeBytes)}, descriptor: ${sample.descriptorFrom})`,
    );

    await waitForWorkers(client, config);
    const source = path.relative(config.repositoryRoots[0], sample.path);
    say(`publishing ${IMAGE} ${VERSION} and replicating it ...`);
    const publishStarted = Date.now();
    // Without --sha256 a publish always runs: a version published before is compared by a run of its own.
    const publishStart = await startPublish(client, config, catalog, { source, image: IMAGE, version: VERSION });
    if (!('handle' in publishStart)) throw new Error(`${IMAGE}@${VERSION}: a publish without --sha256 always runs`);
    const publish = publishStart.handle;
    const published = (await publish.result()) as PublishResult;
    const publishSeconds = (Date.now() - publishStarted) / 1000;
    const record = await catalog.versions.get(IMAGE, VERSION);

    const sddcs = topology.sddcs.map((s) => s.name);
    say(`deploying to ${sddcs.join(', ')} ...`);
    const deployStarted = Date.now();
    const deploy = await startDeploy(client, config, { image: IMAGE, version: VERSION, sddcs });
    const deployed = await deployOutcome(deploy);
    const deploySeconds = (Date.now() - deployStarted) / 1000;
    ok = deployed.results.every((r) => r.status === 'deployed' || r.status === 'already-present');

    const webUi = `http://127.0.0.1:${process.env.TEMPORAL_UI_PORT ?? Number(config.temporal.address.split(':')[1] ?? 7233) + 1000}`;
    const summary = {
      image: published.image,
      version: published.version,
      format: published.format,
      sizeBytes: published.sizeBytes,
      sha256: published.sha256,
      blocks: published.blockCount,
      replicas: (record?.replicas ?? []).map((r) => ({ location: r.location, status: r.status })),
      results: deployed.results.map((r) => ({
        sddc: r.sddc,
        dataCenter: r.dataCenter,
        status: r.status,
        source: r.source,
        path: r.path,
        target: r.target,
        reason: r.reason,
      })),
      workflows: { publish: publish.workflowId, deploy: deploy.workflowId },
      seconds: { publishAndReplicate: publishSeconds, deploy: deploySeconds, total: (Date.now() - started) / 1000 },
      webUi,
    };
    if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else {
      const lines = [
        '',
        `image      ${summary.image}@${summary.version} (${summary.format}, ${formatBytes(summary.sizeBytes)}, ${plural(summary.blocks, 'block')})`,
        `sha256     ${summary.sha256}`,
        `replicas   ${summary.replicas.map((r) => `${r.location} ${r.status}`).join(', ') || 'none'}`,
        '',
        ...resultTable(deployed),
        '',
        `elapsed    ${summary.seconds.total.toFixed(1)}s (publish + replicate ${publishSeconds.toFixed(1)}s, deploy ${deploySeconds.toFixed(1)}s)`,
        `Web UI     ${webUi}/namespaces/${config.temporal.namespace}/workflows?query=${encodeURIComponent(`VmImage="${IMAGE}"`)}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
  } catch (err) {
    process.stderr.write(`demo failed: ${describeFailure(err)}\n`);
  } finally {
    await client.connection.close();
    await catalog.close();
  }

  if (exitWhenDone) {
    await stopAll();
    return ok ? 0 : 1;
  }
  say('\nservices and workers keep running; press Ctrl-C to stop them');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  say('stopping ...');
  await stopAll();
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${describeFailure(err)}\n`);
    process.exit(1);
  },
);
