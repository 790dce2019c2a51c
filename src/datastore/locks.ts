import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { O_EXCL, readNoFollow, writeNoFollow } from './files';

/** Who holds a download lock. `process` tells this process from an earlier one that had the same pid. */
export interface LockHolder {
  pid: number;
  process: string;
  activityId: string;
  workflowId?: string;
  since: string;
}

const THIS_PROCESS = randomUUID();

export function lockHolder(activityId: string, workflowId?: string): LockHolder {
  return { pid: process.pid, process: THIS_PROCESS, activityId, workflowId, since: new Date().toISOString() };
}

export function holderAlive(holder: LockHolder): boolean {
  if (holder.pid === process.pid) return holder.process === THIS_PROCESS;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type LockOutcome = { acquired: true; tookOverFrom?: string } | { acquired: false; holder: LockHolder };

/**
 * Takes the lock of one target file, or says which live holder has it. The holder is written to a file of
 * its own (O_CREAT|O_EXCL) and linked to the lock's name, so a lock never exists half-written. A lock whose
 * holder is dead is renamed aside before it is removed: of two agents taking it over at once only the one
 * that renamed it removes it, and a lock that changed in between is put back and judged again. Inside one
 * process, locks are taken and released one at a time, so its own activities never race on them.
 */
export function acquireLock(lock: string, holder: LockHolder): Promise<LockOutcome> {
  return oneAtATime(async () => {
    const own = `${lock}.${randomUUID()}`;
    await writeNoFollow(own, JSON.stringify(holder), O_EXCL, false);
    let tookOverFrom: string | undefined;
    try {
      for (;;) {
        try {
          await fs.promises.link(own, lock);
          return { acquired: true, tookOverFrom };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const seen = await readNoFollow(lock);
        if (seen === undefined) continue;
        const other = parseHolder(seen);
        if (other && holderAlive(other)) return { acquired: false, holder: other };
        const aside = `${own}.stale`;
        try {
          await fs.promises.rename(lock, aside);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        if ((await fs.promises.readFile(aside, 'utf8')) === seen) tookOverFrom = seen;
        else await fs.promises.link(aside, lock).catch(() => undefined);
        await fs.promises.rm(aside, { force: true });
      }
    } finally {
      await fs.promises.rm(own, { force: true });
    }
  });
}

/** Removes the lock if it is still this holder's. */
export function releaseLock(lock: string, holder: LockHolder): Promise<void> {
  return oneAtATime(async () => {
    if ((await readNoFollow(lock)) === JSON.stringify(holder)) await fs.promises.rm(lock, { force: true });
  });
}

let lockTurn: Promise<unknown> = Promise.resolve();

function oneAtATime<T>(fn: () => Promise<T>): Promise<T> {
  const turn = lockTurn.then(fn);
  lockTurn = turn.catch(() => undefined);
  return turn;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isInteger(h.pid) && typeof h.process === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}
