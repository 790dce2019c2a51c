/**
 * A build the replay check must refuse: the same kind of change as build B, but not behind patched().
 * A run started before it has no timer where this code now starts one, so its replay fails.
 */
import { sleep } from '@temporalio/workflow';
import * as current from '../../../src/workflows';

export * from '../../../src/workflows';

export async function PublishImage(...args: Parameters<typeof current.PublishImage>): ReturnType<typeof current.PublishImage> {
  await sleep('1 second');
  return current.PublishImage(...args);
}
