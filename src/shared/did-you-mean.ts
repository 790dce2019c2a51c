/**
 * The known names closest to a name that is not known, for a "did you mean" in a refusal: those at the
 * smallest number of edits, if that is small (one per four letters of the name, at least one), at most
 * three.
 */
export function closeNames(name: string, known: Iterable<string>): string[] {
  const limit = Math.max(1, Math.floor(name.length / 4));
  const near = [...new Set(known)]
    .filter((k) => k !== name)
    .map((k) => ({ k, d: editDistance(name, k) }))
    .filter(({ d }) => d <= limit);
  const best = Math.min(...near.map(({ d }) => d));
  return near
    .filter(({ d }) => d === best)
    .map(({ k }) => k)
    .sort()
    .slice(0, 3);
}

/** ` (did you mean a or b?)`, or nothing when no known name is close. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const close = closeNames(name, known);
  if (close.length === 0) return '';
  return ` (did you mean ${close.length === 1 ? close[0] : `${close.slice(0, -1).join(', ')} or ${close[close.length - 1]}`}?)`;
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit (the typo people make most). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
