import { execFileSync } from 'node:child_process';
import { dssePython } from '../../src/dev-services/tools';
import type { Envelope } from '../../src/provenance/dsse';
import { loadSigningKey } from '../../src/provenance/keys';
import { signStatement, type Published } from '../../src/provenance/statement';
import { writeStoredEnvelope } from '../../src/provenance/stored';
import type { BlockStore } from '../../src/storage/block-store';

/** securesystemslib's DSSE verifier, fed the envelope and a public key (PEM) with the key ID vmhub names it by. */
const VERIFY = `
import json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
req = json.load(sys.stdin)
key = SSlibKey.from_crypto(load_pem_public_key(req["pem"].encode()), keyid=req["keyid"], scheme=req["scheme"])
envelope = Envelope.from_dict(req["envelope"])
verified = envelope.verify([key], 1)
print(json.dumps({"keyids": sorted(verified.keys()), "statement": json.loads(envelope.payload)}))
`;

export interface IndependentVerdict {
  keyids: string[];
  statement: { subject: unknown; predicate?: unknown };
}

/** Verifies an envelope with securesystemslib (PyPI), not vmhub's code; throws when it does not verify. */
export function verifyWithSecuresystemslib(request: {
  pem: string;
  scheme: 'ed25519' | 'ecdsa-sha2-nistp256';
  keyid: string;
  envelope: Envelope;
}): IndependentVerdict {
  return JSON.parse(
    execFileSync(dssePython(), ['-c', VERIFY], { input: JSON.stringify(request), encoding: 'utf8', stdio: 'pipe' }),
  );
}

/** Signs a statement of `published` with the tests' publishing key (VMHUB_SIGNING_KEY_FILE) and stores it beside `blob`. */
export async function signBeside(store: BlockStore, blob: string, published: Omit<Published, 'run' | 'publishedAt' | 'source'>) {
  const envelope = signStatement(
    {
      source: 'file:///test',
      run: { workflowId: 'test', runId: 'test' },
      publishedAt: new Date().toISOString(),
      ...published,
    },
    loadSigningKey(process.env.VMHUB_SIGNING_KEY_FILE!),
  );
  await writeStoredEnvelope(store, blob, envelope);
  return envelope;
}
