import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import type { Client } from '@temporalio/client';
import type { Catalog } from '../../src/catalog/catalog';
import type { ReplicaRecord } from '../../src/catalog/image-records';
import type { PublishResult } from '../../src/shared/publish-input';
import { BLOCK_MIB, MiB, pairFigure, pairs, plainUpload, stats, streamedCopy, type PairFigure } from './measure';

/** The image's next version in the bench: the same bytes with 1 % of its blocks changed. */
export const NEXT_VERSION = '1.0.1';

/** A figure of a version that sends only what changed: its pair, and the bytes it moved (null: not reported). */
export type IncrementalFigure = PairFigure & { bytes: number | null; sizeBytes: number; from?: string };

/**
 * `dest`: `source` with 1 % of its blocks (at least one) changed in place, 4 KiB each, spread over the
 * image; the first block, which holds the descriptor, is left alone.
 */
export function changedCopy(source: string, dest: string): { blocks: number; changedBlocks: number } {
  const block = BLOCK_MIB * MiB;
  const blocks = Math.ceil(fs.statSync(source).size / block);
  const changedBlocks = Math.ceil(blocks / 100);
  fs.copyFileSync(source, dest);
  const fd = fs.openSync(dest, 'r+');
  for (let i = 1; i <= changedBlocks; i++)
    fs.writeSync(fd, randomBytes(4096), 0, 4096, Math.floor((i * blocks) / (changedBlocks + 1)) * block);
  fs.closeSync(fd);
  return { blocks, changedBlocks };
}

function incrementalFigure(runs: Awaited<ReturnType<typeof pairs>>, moved: Array<number | undefined>, sizeBytes: number) {
  const known = moved.filter((b): b is number => b !== undefined);
  // A count missing from any run (a worker without the field) is no count: "n/a" rather than a partial median.
  return { ...pairFigure(runs, sizeBytes, false), sizeBytes, bytes: known.length === moved.length ? stats(known).median : null };
}

/**
 * Incremental publish: `next` published as NEXT_VERSION of each image that holds its first version (one
 * image a run, so every run starts from the same earlier version), timed whole, against uploadFile of
 * all of `next`. Bytes sent are the workflow result's `sent.bytes`.
 */
export async function incrementalPublishFigure(ctx: {
  publish: (file: string, image: string, version: string) => Promise<{ value: PublishResult; seconds: number; cpu: number }>;
  images: string[];
  next: string;
  primary: ContainerClient;
}): Promise<IncrementalFigure> {
  const sent: Array<number | undefined> = [];
  let from: string | undefined;
  let n = 0;
  const runs = await pairs(
    'incremental publish',
    async () => {
      const image = ctx.images[n++ % ctx.images.length];
      const run = await ctx.publish(ctx.next, image, NEXT_VERSION);
      sent.push(run.value.sent?.bytes);
      from ??= run.value.sent?.from;
      return { seconds: run.seconds, cpu: run.cpu };
    },
    () => plainUpload(ctx.primary, ctx.next),
  );
  return { ...incrementalFigure(runs, sent, fs.statSync(ctx.next).size), from };
}

/**
 * Incremental replication: NEXT_VERSION of `image` replicated to `replicaLocation`, which holds its
 * first version (the replication figure left it there), by a PublishImage that finds the version
 * available; the replicateImage activity timed from its history, as the full replication figure is,
 * against a streamed copy of the whole blob. Bytes crossed are the replica record's `crossed.bytes`.
 */
export async function incrementalReplicationFigure(ctx: {
  client: Client;
  catalog: Catalog;
  taskQueue: string;
  image: string;
  next: string;
  source: BlockBlobClient;
  replica: ContainerClient;
  replicaLocation: string;
  activitySeconds: (workflowId: string, type: string) => Promise<number>;
}): Promise<IncrementalFigure> {
  const record = await ctx.catalog.versions.get(ctx.image, NEXT_VERSION);
  if (!record) throw new Error(`bench: ${ctx.image} ${NEXT_VERSION} was not published`);
  const replicaBlob = ctx.replica.getBlockBlobClient(record.location.blob);
  const crossed: Array<number | undefined> = [];
  let k = 0;
  const runs = await pairs(
    'incremental replication',
    async () => {
      await replicaBlob.deleteIfExists();
      const workflowId = `publish:${ctx.image}:${NEXT_VERSION}:replicate-${k++}`;
      await ctx.client.workflow.execute('PublishImage', {
        args: [{ source: path.basename(ctx.next), image: ctx.image, version: NEXT_VERSION, format: 'iso' }],
        taskQueue: ctx.taskQueue,
        workflowId,
      });
      const replicas = (await ctx.catalog.versions.get(ctx.image, NEXT_VERSION))?.replicas ?? [];
      // `crossed` is newer than this bench's types may be: read it as optional.
      const replica = replicas.find((r) => r.location === ctx.replicaLocation) as
        (ReplicaRecord & { crossed?: { bytes?: number } }) | undefined;
      crossed.push(replica?.crossed?.bytes);
      return { seconds: await ctx.activitySeconds(workflowId, 'replicateImage'), cpu: 0 };
    },
    () => streamedCopy(ctx.source, ctx.replica),
  );
  return incrementalFigure(runs, crossed, record.sizeBytes);
}
