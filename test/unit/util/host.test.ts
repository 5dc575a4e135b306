import { describe, expect, test } from "bun:test";
import { hostPath } from "../../../src/util/host.ts";

describe("hostPath", () => {
  test("returns the path itself without a host root", () => {
    expect(hostPath("/proc/meminfo", undefined)).toBe("/proc/meminfo");
  });
  test("takes the path under the host root when one is set", () => {
    expect(hostPath("/proc/meminfo", "/tmp/host")).toBe("/tmp/host/proc/meminfo");
    expect(hostPath("/sys/fs/cgroup/neon-postgres/memory.stat", "/tmp/h/")).toBe(
      "/tmp/h/sys/fs/cgroup/neon-postgres/memory.stat",
    );
  });
});
