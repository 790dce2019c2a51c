import { spawnSync } from 'node:child_process';
import { createInspector } from '../src/images/inspect';
import { hashPool } from '../src/storage/hashing';
import { archive } from '../test/images/build';

/**
 * `npx tsx scripts/xml-bounds.ts`: the cost of the two hostile descriptors of issue 21 (150,000
 * attributes on one element, and 4 MiB of `<a/>`), each in a process of its own, read two ways: by the
 * OVA inspector on the calling thread (`inspector`: what the parse itself costs), and as a worker's probe
 * and OVF package open read it (`thread`: on a hashing thread). For each: wall time, the longest stall of
 * the process's event loop, and its peak RSS. The numbers in the README come from this script.
 */
const ENVELOPE = `<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">`;

const CASES: Record<string, () => string> = {
  attributes: () =>
    `${ENVELOPE}<VirtualSystem ovf:id="vm" ${Array.from({ length: 150_000 }, (_, i) => `a${i}=""`).join(' ')}/></Envelope>`,
  // The most work an accepted descriptor can ask for: every element and attribute the limits allow, then text up to 4 MiB.
  largest: () => {
    const body = '<a b="" c=""/>'.repeat(99_990);
    return `${ENVELOPE}<t>${'x'.repeat(4 * 1024 * 1024 - ENVELOPE.length - body.length - 30)}</t>${body}</Envelope>`;
  },
  elements: () => `${ENVELOPE}${'<a/>'.repeat((4 * 1024 * 1024 - ENVELOPE.length - 20) / 4)}</Envelope>`,
};

async function inspected(ova: Buffer): Promise<void> {
  const inspector = createInspector('ova');
  for (let at = 0; at < ova.length; at += 256 * 1024) await inspector.write(ova.subarray(at, at + 256 * 1024));
  await inspector.finish();
}

async function measure(name: string, way: string): Promise<void> {
  const descriptor = Buffer.from(CASES[name]());
  const ova = archive([{ name: 'hostile.ovf', bytes: descriptor }]);
  // The longest gap between ticks of a 5 ms timer: how long the event loop was held.
  let last = Date.now();
  let stall = 0;
  const ticks = setInterval(() => {
    stall = Math.max(stall, Date.now() - last);
    last = Date.now();
  }, 5);
  const started = process.hrtime.bigint();
  let outcome = 'accepted';
  try {
    if (way === 'thread') await hashPool().descriptor(descriptor);
    else await inspected(ova);
  } catch (err) {
    outcome = `${(err as { type?: string }).type ?? 'Error'}: ${(err as Error).message}`;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await new Promise((resolve) => setTimeout(resolve, 20));
  clearInterval(ticks);
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(
    `${name} (${way}): descriptor ${(descriptor.length / 1024 / 1024).toFixed(2)} MiB, ${ms.toFixed(0)} ms, ` +
      `longest event-loop stall ${stall} ms, peak RSS ${rss.toFixed(0)} MiB; ${outcome.slice(0, 160)}`,
  );
}

const [only, way] = process.argv.slice(2);
if (only) {
  void measure(only, way);
} else {
  for (const name of Object.keys(CASES)) {
    for (const w of ['inspector', 'thread']) {
      spawnSync(process.execPath, [...process.execArgv, __filename, name, w], { stdio: 'inherit' });
    }
  }
}
