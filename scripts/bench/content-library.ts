import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ContainerClient } from '@azure/storage-blob';
import type { Client } from '@temporalio/client';
import type { Catalog } from '../../src/catalog/catalog';
import { govcBinary } from '../../src/dev-services/tools';
import type { DeployResult } from '../../src/shared/deploy-input';
import type { PublishResult } from '../../src/shared/publish-input';
import { agentTaskQueueOf } from '../../src/shared/task-queues';
import { EDGE_DESCRIPTOR, withFileSizes } from '../../test/images/build';
import { baselineRun, fileSha256, pairFigure, pairs, proc, timed, writeImage, type PairFigure } from './measure';

const run = promisify(execFile);

/** The SDDC of the content-library figure, its library, and the library govc imports into. */
const LIBRARY_SDDC = 'bench-cl';
const VMHUB_LIBRARY = 'bench-vmhub';
const GOVC_LIBRARY = 'bench-govc';
const DISK = 'edge-disk1.vmdk';

/**
 * An OVA of one disk of `size` bytes (the edge appliance of the tests, with a SHA-256 manifest), written
 * by streaming: the disk is too large to build in memory as the tests' images are.
 */
async function writeOva(file: string, size: number): Promise<void> {
  const work = fs.mkdtempSync(`${file}.parts-`);
  try {
    writeImage(path.join(work, DISK), size);
    const ovf = withFileSizes(EDGE_DESCRIPTOR.replace('VERSION', '1.0.0'), { [DISK]: size });
    fs.writeFileSync(path.join(work, 'edge.ovf'), ovf);
    const lines = await Promise.all(
      ['edge.ovf', DISK].map(async (name) => `SHA256(${name})= ${await fileSha256(path.join(work, name))}`),
    );
    fs.writeFileSync(path.join(work, 'edge.mf'), `${lines.join('\n')}\n`);
    await run('tar', ['--format=ustar', '-cf', file, '-C', work, 'edge.ovf', 'edge.mf', DISK]);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The content-library figure's SDDC, with a library on the vcsim at `vcenter`: for the topology and the catalog. */
export function libraryTarget(vcenter: string) {
  return {
    name: LIBRARY_SDDC,
    dataCenter: 'dc-east',
    capacity: { cpus: 64, memoryMiB: 262144, diskGiB: 2048 },
    target: { kind: 'content-library' as const, vcenter, library: VMHUB_LIBRARY },
  };
}

/** What the bench's main gives this figure: its services, a control worker, and how to start an agent. */
export interface LibraryBench {
  client: Client;
  catalog: Catalog;
  /** A control worker's task queue, on the primary-only topology. */
  taskQueue: string;
  repository: string;
  dir: string;
  primary: ContainerClient;
  /** The SDDC, as the topology names it (libraryTarget). */
  sddc: ReturnType<typeof libraryTarget>;
  /** Starts the SDDC's agent, with its datastore and vCenter, and waits for it to poll. */
  startAgent: (datastore: string) => Promise<{ pid: number; stop(): Promise<void> }>;
}

/**
 * Content-library deploy: DeployToSDDCs of a SIZE-byte OVA into LIBRARY_SDDC's library on a vcsim, against
 * what a user would run instead: downloadToFile of the same blob, then `govc library.import` of it into
 * another library of the same vcsim (govc of the same govmomi version). After each run, outside the clock,
 * both items are removed from their libraries and the downloaded files deleted, so every run imports anew.
 */
export async function contentLibraryFigure(ctx: LibraryBench, size: number): Promise<PairFigure> {
  const ova = path.join(ctx.repository, 'bench-cl.ova');
  await writeOva(ova, size);
  const published = (await ctx.client.workflow.execute('PublishImage', {
    args: [{ source: path.basename(ova), image: 'bench-ova', version: '1.0.0', format: 'ova' }],
    taskQueue: ctx.taskQueue,
    workflowId: `publish:bench-ova:1.0.0:${randomUUID()}`,
  })) as PublishResult;
  fs.rmSync(ova);
  const govc = govcBinary();
  // vcsim started without a login takes any; govc's default is vcsim's own.
  const url = new URL('sdk', ctx.sddc.target.vcenter);
  url.username = 'user';
  url.password = 'pass';
  const env = { ...process.env, GOVC_URL: url.href, GOVC_INSECURE: '1' };
  const govcRun = (...args: string[]) => run(govc, args, { env });
  // vcsim's first datastore, where the agent also makes its library.
  await govcRun('library.create', '-ds', 'LocalDS_0', GOVC_LIBRARY);
  await ctx.catalog.sddcs.add({ ...ctx.sddc, taskQueue: agentTaskQueueOf(LIBRARY_SDDC) });
  const datastore = path.join(ctx.dir, 'sddc', LIBRARY_SDDC);
  const agent = await ctx.startAgent(datastore);
  const blob = ctx.primary.getBlockBlobClient(published.location.blob);
  let n = 0;
  const runs = await pairs(
    'content-library deploy',
    async () => {
      const before = proc(agent.pid).cpu;
      const { value, seconds } = await timed(
        async () =>
          (await ctx.client.workflow.execute('DeployToSDDCs', {
            args: [{ image: published.image, version: published.version, sddcs: [LIBRARY_SDDC] }],
            taskQueue: ctx.taskQueue,
            workflowId: `deploy:${published.image}:${published.version}:${randomUUID()}`,
          })) as DeployResult,
      );
      const cpu = proc(agent.pid).cpu - before;
      const [row] = value.results;
      if (row.status !== 'deployed' || !row.target)
        throw new Error(`bench content-library deploy did not deploy: ${JSON.stringify(row)}`);
      await govcRun('library.rm', `${VMHUB_LIBRARY}/${row.target.itemName}`);
      fs.rmSync(path.join(datastore, published.image), { recursive: true, force: true });
      return { seconds, cpu };
    },
    async () => {
      const file = path.join(ctx.dir, 'baseline-library.ova');
      const item = `baseline-${n++}`;
      const timedRun = await baselineRun(async () => {
        await blob.downloadToFile(file, 0, undefined, { maxRetryRequests: 3 });
        await govcRun('library.import', '-n', item, GOVC_LIBRARY, file);
      });
      fs.rmSync(file);
      await govcRun('library.rm', `${GOVC_LIBRARY}/${item}`);
      return timedRun;
    },
  );
  await agent.stop();
  // govc's CPU is another process's, and vcsim's serves both sides: no CPU figure.
  return pairFigure(runs, size, false);
}
