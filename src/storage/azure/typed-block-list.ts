import { createHttpHeaders, createPipelineRequest, type PipelineRequest, type PipelineResponse } from '@azure/core-rest-pipeline';
import { BlockBlobClient, RestError } from '@azure/storage-blob';
import type { CommitOptions } from '../block-store';

/**
 * The service version this request is written to (every request names one). Pinned rather than the SDK's,
 * which moves with upgrades: Put Block List has been this request since long before it.
 */
const SERVICE_VERSION = '2025-01-05';

/**
 * Put Block List with each block named `Committed` or `Uncommitted`, in the blob's order. The SDK's
 * commitBlockList names every block `Latest`, which takes a block staged under an ID over the committed
 * one; its typed form groups the blocks by kind, which reorders them. Sent through the client's own
 * pipeline, so it is signed, retried and traced as the SDK's calls are. A commit retried after its answer
 * was lost meets its own etag change and fails If-Match: the caller then starts again, which is sound.
 */
export async function commitTypedBlockList(
  client: BlockBlobClient,
  ids: readonly string[],
  keep: ReadonlySet<string>,
  { abortSignal, conditions, contentType, metadata }: CommitOptions,
): Promise<{ etag: string }> {
  const entries = ids.map((id) => (keep.has(id) ? `<Committed>${id}</Committed>` : `<Uncommitted>${id}</Uncommitted>`));
  const body = `<?xml version="1.0" encoding="utf-8"?><BlockList>${entries.join('')}</BlockList>`;
  const headers = createHttpHeaders({
    'x-ms-version': SERVICE_VERSION,
    'content-type': 'application/xml; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
  });
  if (contentType !== undefined) headers.set('x-ms-blob-content-type', contentType);
  for (const [key, value] of Object.entries(metadata ?? {})) headers.set(`x-ms-meta-${key}`, value);
  if (conditions?.ifMatch !== undefined) headers.set('if-match', conditions.ifMatch);
  if (conditions?.ifNoneMatch !== undefined) headers.set('if-none-match', conditions.ifNoneMatch);
  const url = new URL(client.url);
  url.searchParams.set('comp', 'blocklist');
  const response = await ClientPipeline.send(
    client,
    // Plain http only where the client's own URL is (Azurite).
    createPipelineRequest({
      url: url.toString(),
      method: 'PUT',
      headers,
      body,
      abortSignal,
      allowInsecureConnection: url.protocol === 'http:',
    }),
  );
  const etag = response.headers.get('etag');
  if (response.status === 201 && !etag) throw new Error('Put Block List succeeded without an ETag: the commit cannot be named');
  if (response.status !== 201 || !etag) {
    const code = response.headers.get('x-ms-error-code') ?? undefined;
    // The service's own words, from its error body, without the request's URL (which may carry a SAS).
    const said = /<Message>([^<]*)<\/Message>/.exec(response.bodyAsText ?? '')?.[1]?.split('\n')[0];
    throw new RestError(`Put Block List answered ${response.status}${code ? ` ${code}` : ''}${said ? `: ${said}` : ''}`, {
      code,
      statusCode: response.status,
    });
  }
  return { etag };
}

/**
 * Reaches the client's pipeline, which the SDK declares for its subclasses (`storageClientContext`); the
 * SDK is pinned (~12.32) and the block store contract runs this request on Azurite.
 */
class ClientPipeline extends BlockBlobClient {
  static send(client: BlockBlobClient, request: PipelineRequest): Promise<PipelineResponse> {
    return (client as ClientPipeline).storageClientContext.sendRequest(request);
  }
}
