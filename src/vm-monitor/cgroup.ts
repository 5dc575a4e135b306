// What the vm-monitor reads from the host: total memory once per agent connection, and every
// 100 ms the cgroup's memory.stat, averaged over the last 5 samples. Nothing is ever written.

import { statfsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { hostRoot } from "../testing-knobs.ts";
import { hostPath } from "../util/host.ts";

export const POLL_INTERVAL_MS = 100;
export const HISTORY_LEN = 5;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** `active_anon + inactive_anon` from a memory.stat text; missing keys count as 0. */
export function nonReclaimable(memoryStat: string): number {
  let total = 0;
  for (const line of memoryStat.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === "active_anon" || key === "inactive_anon") {
      const n = Number(value);
      if (Number.isSafeInteger(n) && n >= 0) total += n;
    }
  }
  return total;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return null;
  }
}

/**
 * Total memory: MemTotal from /proc/meminfo, unless the cgroup root has both memory.current and
 * memory.max as integers, in which case memory.max (how the reference's system-info library
 * reads memory inside a limited container).
 */
export async function totalSystemMemory(root: string | undefined = hostRoot): Promise<number> {
  const current = (await readText(hostPath("/sys/fs/cgroup/memory.current", root)))?.trim();
  const max = (await readText(hostPath("/sys/fs/cgroup/memory.max", root)))?.trim();
  if (current && max && /^\d+$/.test(current) && /^\d+$/.test(max)) return Number(max);
  const meminfoPath = hostPath("/proc/meminfo", root);
  const m = (await readText(meminfoPath))?.match(/^MemTotal:\s+(\d+)\s*kB/m);
  if (!m) throw new Error(`cannot read MemTotal from ${meminfoPath}`);
  return Number(m[1]) * 1024;
}

/**
 * The checks made once per agent connection: /sys/fs/cgroup is a cgroup2 mount (skipped under
 * the testing host root) and its root lists the memory controller.
 */
export async function checkCgroupHost(): Promise<void> {
  if (!hostRoot) {
    let type: number;
    try {
      type = Number(statfsSync("/sys/fs/cgroup").type);
    } catch {
      throw new Error("cgroups v2 not supported");
    }
    if (type !== CGROUP2_SUPER_MAGIC) throw new Error("cgroups v2 not supported");
  }
  const controllers = await readText(hostPath("/sys/fs/cgroup/cgroup.controllers"));
  if (!controllers?.split(/\s+/).includes("memory")) {
    throw new Error("could not find memory subsystem");
  }
}

export interface MemoryHistory {
  /** Integer mean of the last samples' non-reclaimable bytes. */
  avgNonReclaimable: number;
  /** How many samples the mean covers (at most 5). */
  samplesCount: number;
  /** When this summary was taken (performance.now()). */
  at: number;
}

/**
 * Polls `<cgroup root>/<name>/memory.stat` every 100 ms (the first read at once; missed ticks
 * are skipped, not bunched) and calls `onUpdate` with the summary of the last 5 samples. The file
 * is opened afresh on every read; an unreadable file counts as zero usage.
 */
export class MemoryWatcher {
  readonly path: string;
  #samples: number[] = [];
  #timer: Timer | undefined;
  #stopped = false;
  #origin = 0;
  #ticks = 0;
  #warnedUnreadable = false;

  constructor(
    cgroup: string,
    private readonly onUpdate: (h: MemoryHistory) => void,
    private readonly warn: (message: string) => void = () => {},
    root: string | undefined = hostRoot,
  ) {
    this.path = hostPath(`/sys/fs/cgroup/${cgroup}/memory.stat`, root);
  }

  /** Starts polling; resolves once the first sample is in. */
  async start(): Promise<void> {
    this.#origin = performance.now();
    await this.#tick();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const text = await readText(this.path);
    if (this.#stopped) return;
    if (text === null && !this.#warnedUnreadable) {
      this.#warnedUnreadable = true;
      this.warn(`cannot read ${this.path}: counting its usage as 0`);
    }
    this.#samples.push(text === null ? 0 : nonReclaimable(text));
    if (this.#samples.length > HISTORY_LEN) this.#samples.shift();
    const sum = this.#samples.reduce((a, b) => a + b, 0);
    try {
      this.onUpdate({
        avgNonReclaimable: Math.floor(sum / this.#samples.length),
        samplesCount: this.#samples.length,
        at: performance.now(),
      });
    } catch (err) {
      // The tick runs from a timer: nothing above it would catch this.
      this.warn(`memory update failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    // The next tick on the 100 ms grid after now; a late tick skips the ones it missed.
    const now = performance.now();
    this.#ticks = Math.max(
      this.#ticks + 1,
      Math.floor((now - this.#origin) / POLL_INTERVAL_MS) + 1,
    );
    const delay = Math.max(0, this.#origin + this.#ticks * POLL_INTERVAL_MS - now);
    if (!this.#stopped) this.#timer = setTimeout(() => void this.#tick(), delay);
  }
}
