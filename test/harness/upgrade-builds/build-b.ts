/**
 * Build B of the upgrade test (test/worker-upgrade.test.ts): today's workflows, with a change to
 * PublishImage and DeployToSDDCs done the way this codebase does every change, behind patched(). Runs
 * that build A started replay past it; runs started on B record the patch and a memo naming the build.
 */
import { patched, upsertMemo } from '@temporalio/workflow';
import * as current from '../../../src/workflows';
import { BUILD_B_PATCH, BUILD_MEMO } from './patch';

export * from '../../../src/workflows';

function markBuildB(): void {
  if (patched(BUILD_B_PATCH)) upsertMemo({ [BUILD_MEMO]: 'B' });
}

export async function PublishImage(...args: Parameters<typeof current.PublishImage>): ReturnType<typeof current.PublishImage> {
  markBuildB();
  return current.PublishImage(...args);
}

export async function DeployToSDDCs(...args: Parameters<typeof current.DeployToSDDCs>): ReturnType<typeof current.DeployToSDDCs> {
  markBuildB();
  return current.DeployToSDDCs(...args);
}
