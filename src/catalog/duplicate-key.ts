import { MongoServerError } from 'mongodb';

const DUPLICATE_KEY = 11000;

/** An insert or upsert lost to a document with the same unique key. */
export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}
