import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type MemoryHistory,
  MemoryWatcher,
  nonReclaimable,
  totalSystemMemory,
} from "../../../src/vm-monitor/cgroup.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function hostDir(): string {
  const d = mkdtempSync(join(tmpdir(), "vmm-unit-"));
  dirs.push(d);
  mkdirSync(join(d, "proc"), { recursive: true });
  mkdirSync(join(d, "sys/fs/cgroup/g"), { recursive: true });
  return d;
}

describe("memory.stat", () => {
  test("non-reclaimable is active_anon + inactive_anon; other keys and junk are ignored", () => {
    expect(
      nonReclaimable(
        "anon 999\nfile 5\nactive_anon 100\ninactive_anon 23\nactive_file 7\nbogus x\n",
      ),
    ).toBe(123);
    expect(nonReclaimable("inactive_anon 5\n")).toBe(5);
    expect(nonReclaimable("")).toBe(0);
    expect(nonReclaimable("active_anon nope\n")).toBe(0);
  });
});

describe("total memory", () => {
  test("MemTotal in kB × 1024", async () => {
    const d = hostDir();
    writeFileSync(join(d, "proc/meminfo"), "MemTotal:        1048576 kB\nMemFree: 1 kB\n");
    expect(await totalSystemMemory(d)).toBe(1024 ** 3);
  });

  test("the cgroup root's memory.max wins when memory.current and memory.max are both integers", async () => {
    const d = hostDir();
    writeFileSync(join(d, "proc/meminfo"), "MemTotal:        1048576 kB\n");
    writeFileSync(join(d, "sys/fs/cgroup/memory.current"), "12345\n");
    writeFileSync(join(d, "sys/fs/cgroup/memory.max"), "536870912\n");
    expect(await totalSystemMemory(d)).toBe(512 * 1024 ** 2);
    writeFileSync(join(d, "sys/fs/cgroup/memory.max"), "max\n");
    expect(await totalSystemMemory(d)).toBe(1024 ** 3);
  });

  test("no MemTotal is an error naming the file", async () => {
    const d = hostDir();
    await expect(totalSystemMemory(d)).rejects.toThrow(join(d, "proc/meminfo"));
  });
});

describe("the watcher", () => {
  test("a first sample at once, then every 100 ms; the mean covers the last 5; the file is re-read", async () => {
    const d = hostDir();
    const stat = join(d, "sys/fs/cgroup/g/memory.stat");
    writeFileSync(stat, "active_anon 1000\ninactive_anon 0\n");
    const seen: MemoryHistory[] = [];
    const w = new MemoryWatcher(
      "g",
      (h) => seen.push(h),
      () => {},
      d,
    );
    const t0 = performance.now();
    await w.start();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ avgNonReclaimable: 1000, samplesCount: 1 });
    await Bun.sleep(650);
    writeFileSync(stat, "active_anon 6000\n");
    await Bun.sleep(250);
    w.stop();
    const n = seen.length;
    await Bun.sleep(250);
    expect(seen.length).toBe(n);
    // ~9 samples in ~900 ms on the 100 ms grid (a loaded machine may skip some, never bunch them).
    expect(n).toBeGreaterThanOrEqual(5);
    expect(n).toBeLessThanOrEqual(11);
    // Never faster than the grid: at most one sample per 100 ms elapsed, plus the first.
    const span = seen.at(-1)!.at - seen[0]!.at;
    expect(n - 1).toBeLessThanOrEqual(Math.floor(span / 100) + 1);
    expect(seen.map((h) => h.samplesCount).slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(Math.max(...seen.map((h) => h.samplesCount))).toBe(5);
    const last = seen.at(-1)!;
    // The last ≤5 samples mix 1000s and 6000s: an integer mean strictly between.
    expect(last.avgNonReclaimable).toBeGreaterThan(1000);
    expect(Number.isInteger(last.avgNonReclaimable)).toBe(true);
    expect(last.at - t0).toBeLessThan(2000);
  });

  test("an unreadable memory.stat counts as zero and is warned about once", async () => {
    const d = hostDir();
    const seen: MemoryHistory[] = [];
    const warnings: string[] = [];
    const w = new MemoryWatcher(
      "g",
      (h) => seen.push(h),
      (m) => warnings.push(m),
      d,
    );
    await w.start();
    await Bun.sleep(250);
    w.stop();
    expect(seen.every((h) => h.avgNonReclaimable === 0)).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("memory.stat");
  });
});
