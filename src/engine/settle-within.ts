/**
 * Waits for `work` to settle, or `ms` at most, whichever comes first; never rejects. The timer holds no
 * process open, and is cleared once the wait is over.
 */
export async function settleWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms).unref()));
  await Promise.race([
    work.then(
      () => undefined,
      () => undefined,
    ),
    waited,
  ]);
  clearTimeout(timer);
}
