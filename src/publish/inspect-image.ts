import type { Liveness, Log } from '../engine/liveness';
import { VmhubError } from '../shared/errors';
import type { ImageFormat } from '../shared/image-format';
import type { ImageMetadata } from '../images/inspect';
import { refuseUnreferenced } from '../images/ova';
import type { ImageSource } from '../source/source';
import { blockDigestOf, blockId, blockListDigest } from '../storage/block-ids';
import { blockBounds, type BlockPlan } from '../shared/block-plan';
import type { HeldBytes } from './block-tap';
import type { PublishWorkspace, TapKey } from './workspace';
import { metrics, noteVerificationFailure } from '../observability/metrics';

/** Progress of the inspection: the pass has read `bytesDone` of `bytesTotal`, and is at `block`. */
interface InspectBeat {
  phase: 'inspecting';
  block: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface SourceDigest {
  sha256: string;
  blockListDigest: string;
}

export interface Inspection extends SourceDigest {
  metadata: ImageMetadata;
}

export interface InspectImage {
  source: ImageSource;
  format: ImageFormat;
  tapKey: TapKey;
  plan: BlockPlan;
  /** The image published, for the metrics; runs that began before it was passed count under an empty name. */
  image?: string;
  signal: AbortSignal;
}

/**
 * One sequential pass over the source: the SHA-256 of the whole image, a digest of the block IDs it
 * implies (the commit compares it with the staged blocks, so the committed blob is these very bytes),
 * and the image's metadata, with every OVA member checked against the manifest on the way (and an OVA
 * holding members its descriptor does not reference refused). Blocks
 * that this publish's staging in this process has read and digested come from the tap; the others
 * are read here. Hashing and inspection run on a hashing thread, fed in order.
 */
export async function inspectImage(
  work: PublishWorkspace,
  input: InspectImage,
  liveness: Liveness<InspectBeat>,
  log: Log,
): Promise<Inspection> {
  const { source: s, plan, signal } = input;
  if (s.sizeBytes !== plan.sizeBytes) {
    throw new VmhubError('SourceChanged', `source is now ${s.sizeBytes} bytes, was ${plan.sizeBytes}`);
  }
  const stream = await work.hashes.openStream(input.format, await work.inspectOptions());
  // Attached once nothing can fail before the `finally` that detaches it: staging waits for it.
  const tap = work.tap(input.tapKey, plan).attachInspector();
  const ids: string[] = new Array<string>(plan.blockCount);
  const counts = { fromTap: 0, readHere: 0 };
  const readHere = (i: number): Promise<HeldBytes> => work.readBlock(s, plan, i, signal);
  // A block is hashed on the thread while the next one is fetched; one at a time waits there.
  const taking: Array<Promise<void>> = [];
  let ahead: { index: number; held: Promise<HeldBytes> } | undefined;
  let block = 0;
  let bytesDone = 0;
  const beat = (): void => liveness.beat({ phase: 'inspecting', block, bytesDone, bytesTotal: plan.sizeBytes });
  try {
    return await liveness.keepBeating(async () => {
      for (; block < plan.blockCount; block++) {
        const i = block;
        let next: { held: HeldBytes; digest?: string };
        if (ahead?.index === i) {
          next = { held: await ahead.held };
          ahead = undefined;
          tap.passed(i);
        } else {
          next = (await tap.take(i, signal)) ?? { held: await readHere(i) };
        }
        const { held, digest } = next;
        if (digest !== undefined) {
          counts.fromTap++;
          ids[i] = blockId(i, digest);
        } else {
          counts.readHere++;
          // Reading here, the next block is likely read here too: start it now unless a lane will bring it.
          if (i + 1 < plan.blockCount && !tap.expects(i + 1)) {
            ahead = { index: i + 1, held: readHere(i + 1) };
            ahead.held.catch(() => undefined); // awaited next time round, or let go in `finally`
          }
        }
        try {
          await taking.shift();
        } catch (err) {
          held.release();
          throw err;
        }
        // The thread reads the bytes in place: they are let go once it has answered.
        const taken = stream
          .push(held.bytes, { digest: digest === undefined })
          .then((answer) => {
            // An invalid image fails the publish now, not after the last byte is read.
            if (answer.invalid) throw answer.invalid;
            if (answer.sha256 !== undefined) ids[i] = blockId(i, blockDigestOf(answer.sha256));
          })
          .finally(() => held.release());
        taken.catch(() => undefined); // awaited before the next push
        taking.push(taken);
        metrics.inspectedBytes.inc({ image: input.image ?? '' }, held.bytes.length);
        bytesDone = blockBounds(plan, i).end;
        beat();
      }
      for (const taken of taking.splice(0)) await taken;
      const { sha256, metadata, invalid } = await stream.finish();
      if (invalid) throw invalid;
      if (metadata?.kind === 'ova') refuseUnreferenced(metadata);
      log.info('inspected', { blocks: plan.blockCount, ...counts });
      return { sha256, blockListDigest: blockListDigest(ids), metadata: metadata! };
    }, beat);
  } catch (err) {
    throw noteVerificationFailure(err);
  } finally {
    tap.detach();
    void stream.close();
    ahead?.held.then(
      (held) => held.release(),
      () => undefined,
    );
    await Promise.allSettled(taking);
  }
}
