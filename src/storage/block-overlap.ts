import { parseBlockId } from './block-ids';

/**
 * How many blocks of a new version's committed block list hold bytes a previous version's list also holds,
 * told by the content digest every block ID carries: what a delta deploy of the new version to an SDDC
 * holding the previous one need not fetch. Comparable only between lists of one block size.
 */
export function sharedBlockCount(newIds: Iterable<string>, previousIds: Iterable<string>): number {
  const previous = new Set<string>();
  for (const id of previousIds) {
    const parsed = parseBlockId(id);
    if (parsed) previous.add(parsed.digest);
  }
  let shared = 0;
  for (const id of newIds) {
    const parsed = parseBlockId(id);
    if (parsed && previous.has(parsed.digest)) shared++;
  }
  return shared;
}
