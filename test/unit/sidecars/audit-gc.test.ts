import { describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteOldAuditLogs, logDirSize, startAuditGc } from "../../../src/sidecars/audit-gc.ts";

async function tree() {
  const dir = await mkdtemp(join(tmpdir(), "auditgc-"));
  await mkdir(join(dir, "sub"));
  const old = new Date(Date.now() - 16 * 60_000);
  const files: Record<string, boolean> = {
    "audit-1.log": true,
    "audit.log": true,
    "sub/audit-2.log": true,
    "postgresql.log": true,
    "audit-3.log.gz": true,
    "xaudit.log": true,
  };
  for (const f of Object.keys(files)) {
    await writeFile(join(dir, f), "12345");
    await utimes(join(dir, f), old, old);
  }
  await writeFile(join(dir, "audit-new.log"), "123");
  return dir;
}

describe("pgaudit log clean-up", () => {
  test("old audit*.log anywhere below are deleted; others and fresh ones stay", async () => {
    const dir = await tree();
    const deleted = (await deleteOldAuditLogs(dir)).map((p) => p.slice(dir.length + 1)).sort();
    expect(deleted).toEqual(["audit-1.log", "audit.log", "sub/audit-2.log"]);
    for (const kept of ["postgresql.log", "audit-3.log.gz", "xaudit.log", "audit-new.log"]) {
      expect(await Bun.file(join(dir, kept)).exists()).toBe(true);
    }
  });

  test("a missing directory is nothing to delete", async () => {
    expect(await deleteOldAuditLogs("/nonexistent-audit-dir")).toEqual([]);
  });

  test("size: regular files directly inside whose name ends with log", async () => {
    const dir = await tree();
    await symlink(join(dir, "audit-new.log"), join(dir, "link.log"));
    // postgresql.log 5 + xaudit.log 5 + audit-1.log 5 + audit.log 5 + audit-new.log 3 + link 3
    expect(await logDirSize(dir)).toBe(26);
  });

  test("the loop publishes the size at once, then every interval, and 0 when unmeasurable", async () => {
    const dir = await tree();
    const sizes: number[] = [];
    const gc = startAuditGc({ logDirectory: dir, intervalMs: 50, setSize: (n) => sizes.push(n) });
    await Bun.sleep(300);
    gc.stop();
    expect(sizes.length).toBeGreaterThanOrEqual(3);
    expect(sizes[0]).toBe(10 + 3); // after deleting audit-1.log and audit.log
    const missing: number[] = [];
    const gc2 = startAuditGc({
      logDirectory: "/nonexistent-audit-dir",
      intervalMs: 1000,
      setSize: (n) => missing.push(n),
    });
    await Bun.sleep(100);
    gc2.stop();
    expect(missing).toEqual([0]);
  });
});
