// Shared by the benchmarks: percentiles, a table printer, RSS from /proc, and a floor program
// compiled the same way as compute_ctl (bun build --compile), so ratios compare like with like.
import { mkdtempSync, readFileSync } from "node:fs";
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

/** utime + stime of `pid`, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** wrk's req/s, and the server's CPU time per request (µs), which load on the machine bends less. */
export async function wrk(
  url: string,
  headers: Record<string, string>,
  seconds: number,
  pid: number,
) {
  const cpu0 = cpuSeconds(pid);
  const args = ["wrk", "-t1", "-c50", `-d${seconds}s`, "--latency"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  const p = Bun.spawn([...args, url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  if ((await p.exited) !== 0) throw new Error(`wrk failed: ${await new Response(p.stderr).text()}`);
  const cpu = cpuSeconds(pid) - cpu0;
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const requests = Number(out.match(/(\d+) requests in/)?.[1]);
  if (/Non-2xx/.test(out) || /Socket errors/.test(out) || !Number.isFinite(rps)) {
    throw new Error(`wrk reported errors against ${url}:\n${out}`);
  }
  return { rps, cpuUs: (cpu / requests) * 1e6 };
}
