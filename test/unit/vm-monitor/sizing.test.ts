import { describe, expect, test } from "bun:test";
import {
  cgroupThreshold,
  lfcSize,
  MiB,
  mib,
  usableMemory,
} from "../../../src/vm-monitor/sizing.ts";

const GiB = 1024 * MiB;

// VM memory; file cache and threshold at connect (from MemTotal); then, after an upscale
// notification or downscale to the same memory: usable memory, file cache, threshold (MiB).
const TABLE: [number, number, number, number, number, number][] = [
  [0.25 * GiB, 0, 217.6, 156, 0, 132.6],
  [0.5 * GiB, 232, 435.2, 412, 141, 350.2],
  [1 * GiB, 698, 870.4, 924, 607, 785.4],
  [2 * GiB, 1536, 1740.8, 1948, 1461, 1655.8],
  [4 * GiB, 3072, 3481.6, 3996, 2997, 3396.6],
  [8 * GiB, 6144, 6963.2, 8092, 6069, 6878.2],
];

describe("file cache size and memory threshold", () => {
  for (const [mem, lfc0, thr0, usable, lfc1, thr1] of TABLE) {
    test(`${mem / GiB} GiB`, () => {
      expect(lfcSize(mem)).toBe(lfc0 * MiB);
      expect(cgroupThreshold(mem) / MiB).toBeCloseTo(thr0, 1);
      expect(mib(cgroupThreshold(mem))).toBe(String(thr0));
      expect(usableMemory(mem)).toBe(usable * MiB);
      expect(lfcSize(usableMemory(mem))).toBe(lfc1 * MiB);
      expect(mib(cgroupThreshold(usableMemory(mem)))).toBe(String(thr1));
    });
  }

  test("the threshold is floor(0.85 × total), in whole bytes", () => {
    expect(cgroupThreshold(1 * GiB)).toBe(912680550);
    expect(cgroupThreshold(0)).toBe(0);
    expect(cgroupThreshold(100)).toBe(85);
  });

  test("the file cache is 0 up to 256 MiB, then the spread line, then 75% (crossing near 1463 MiB)", () => {
    expect(lfcSize(0)).toBe(0);
    expect(lfcSize(256 * MiB)).toBe(0);
    expect(lfcSize(257 * MiB)).toBe(0); // 1 MiB / 1.1 rounds down to 0 MiB
    expect(lfcSize(258 * MiB)).toBe(1 * MiB);
    // 1462 MiB: spread (1206/1.1 = 1096.36) < 75% (1096.5): the spread line.
    expect(lfcSize(1462 * MiB)).toBe(1096 * MiB);
    // 1464 MiB: 75% (1098) < spread (1098.18).
    expect(lfcSize(1464 * MiB)).toBe(1098 * MiB);
    expect(lfcSize(1464 * MiB + 1) % MiB).toBe(0);
  });

  test("usable memory never goes below zero", () => {
    expect(usableMemory(50 * MiB)).toBe(0);
    expect(usableMemory(100 * MiB)).toBe(0);
  });
});
