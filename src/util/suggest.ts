// "Did you mean …?" for a mistyped flag: the closest known name by edit distance (a swap of two
// neighbouring characters counts as one edit), if it is close enough to be a typo.

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      let v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, (d[i - 2] as number[])[j - 2]! + 1);
      }
      row[j] = v;
    }
  }
  return (d[rows - 1] as number[])[cols - 1]!;
}

/**
 * The candidate closest to `given`, when it is a likely typo of it: at most two edits, and at
 * most a third of the candidate's length (so `--dev` does not suggest `--log`). Separators are
 * ignored first: `pg-data`, `pg_data` and `PgData` all find `pgdata`.
 */
export function closestName(given: string, candidates: readonly string[]): string | undefined {
  const bare = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const exact = candidates.find((c) => bare(c) === bare(given));
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const dist = editDistance(given.toLowerCase(), c);
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.min(2, Math.floor(best.length / 3)));
  return bestDistance <= limit ? best : undefined;
}
