// Finding processes a test left behind: every Postgres process (postmaster and backends) runs
// with PGDATA as its working directory, and the pgbin wrapper's sync-safekeepers has PGDATA in
// its environment, so scanning /proc for either finds them all.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export function processesUsing(dir: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      const env = readFileSync(`/proc/${pid}/environ`, "utf8");
      if (cwd === dir || cwd.startsWith(`${dir}/`) || env.includes(`PGDATA=${dir}\0`)) {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
        found.push({ pid, cmdline });
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}
