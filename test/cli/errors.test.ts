import { WorkflowNotFoundError } from '@temporalio/client';
import { errorOf } from '../../src/cli/errors';

describe('errorOf', () => {
  it('names a workflow ID the server does not know UnknownWorkflow, and says where to look', () => {
    expect(errorOf(new WorkflowNotFoundError('workflow not found for ID: nosuch', 'nosuch', undefined))).toEqual({
      type: 'UnknownWorkflow',
      message: 'workflow not found for ID: nosuch; `vmhub runs` lists recent runs',
    });
  });
});
