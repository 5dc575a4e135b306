// Shared by the benchmarks: percentiles, a table printer, RSS from /proc, and a floor program
// compiled the same way as compute_ctl (bun build --compile), so ratios compare like with like.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] ?? Number.NaN;
}

export const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

export function table(rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map((c) => (typeof c === "number" ? fmt(c) : c)));
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length))) ?? [];
  for (const r of cells) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

/** VmRSS and VmHWM of a process, in MiB. */
export async function memoryMiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const kb = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** Compiles `source` into a standalone executable, like build.ts does for compute_ctl. */
export async function compileFloor(name: string, source: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "compute_ctl-bench-"));
  const entry = join(dir, `${name}.ts`);
  await Bun.write(entry, source);
  const outfile = join(dir, name);
  const r = await Bun.build({ entrypoints: [entry], compile: { outfile }, bytecode: true });
  if (!r.success) throw new Error(`floor build failed: ${r.logs.join("\n")}`);
  return outfile;
}
