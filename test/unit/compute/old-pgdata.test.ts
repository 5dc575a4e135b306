import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discardPgdata, discardsSettled, isDiscarded } from "../../../src/compute/old-pgdata.ts";

let parent: string;
let pgdata: string;

function fill(dir: string, files = 50): void {
  mkdirSync(join(dir, "base", "1"), { recursive: true });
  for (let i = 0; i < files; i++)
    writeFileSync(join(dir, "base", "1", String(i)), "x".repeat(8192));
  writeFileSync(join(dir, "postgresql.conf"), "port = 1\n");
}

beforeEach(() => {
  parent = mkdtempSync(join(tmpdir(), "old-pgdata-"));
  pgdata = join(parent, "pgdata");
});
afterEach(async () => {
  await discardsSettled();
  rmSync(parent, { recursive: true, force: true });
});

describe("discardPgdata", () => {
  test("the path is free at once and the old tree is gone once the deletion settles", async () => {
    fill(pgdata);
    await discardPgdata(pgdata);
    expect(existsSync(pgdata)).toBe(false);
    // The new PGDATA can be created at once, and holds nothing of the old one.
    mkdirSync(pgdata);
    expect(readdirSync(pgdata)).toEqual([]);
    await discardsSettled();
    expect(readdirSync(parent)).toEqual(["pgdata"]);
    expect(readdirSync(pgdata)).toEqual([]);
  });

  test("a symlink inside (pg_dynshmem -> /dev/shm/) is removed, never followed", async () => {
    const shm = join(parent, "shm");
    mkdirSync(shm);
    writeFileSync(join(shm, "PostgreSQL.1234"), "segment");
    fill(pgdata);
    symlinkSync(`${shm}/`, join(pgdata, "pg_dynshmem"));
    await discardPgdata(pgdata);
    await discardsSettled();
    expect(readdirSync(parent)).toEqual(["shm"]);
    expect(readdirSync(shm)).toEqual(["PostgreSQL.1234"]);
  });

  test("a missing PGDATA is no error and nothing is created", async () => {
    await discardPgdata(pgdata);
    await discardsSettled();
    expect(readdirSync(parent)).toEqual([]);
  });

  test("a trailing slash names the same directory", async () => {
    fill(pgdata);
    await discardPgdata(`${pgdata}/`);
    expect(existsSync(pgdata)).toBe(false);
    await discardsSettled();
    expect(readdirSync(parent)).toEqual([]);
  });

  test("copies left by an earlier run are removed; other siblings are not touched", async () => {
    const leftover = join(parent, ".pgdata.discarded-4242-1700000000000");
    fill(leftover);
    const keep = [".pgdata.discarded-x", ".other.discarded-1-2", "pgdata2", ".pgdata.discarded-1"];
    for (const name of keep) fill(join(parent, name), 1);
    fill(pgdata);
    await discardPgdata(pgdata);
    await discardsSettled();
    expect(readdirSync(parent).sort()).toEqual([...keep].sort());
  });

  test("a leftover is removed also when there is no PGDATA to discard", async () => {
    fill(join(parent, ".pgdata.discarded-1-2"));
    await discardPgdata(pgdata);
    await discardsSettled();
    expect(readdirSync(parent)).toEqual([]);
  });

  test("a PGDATA that cannot be renamed (a mount point) is emptied in place", async () => {
    mkdirSync(pgdata);
    const mounted = spawnSync("mount", ["-t", "tmpfs", "none", pgdata]);
    if (mounted.status !== 0) {
      console.warn(`skipped: cannot mount a tmpfs here (${mounted.stderr.toString().trim()})`);
      return;
    }
    try {
      fill(pgdata);
      await discardPgdata(pgdata);
      // The mount point itself stays (the caller's mkdir then fails, as with the reference's
      // remove_dir_all), its contents are gone and nothing was moved aside.
      expect(readdirSync(pgdata)).toEqual([]);
      await discardsSettled();
      expect(readdirSync(parent)).toEqual(["pgdata"]);
    } finally {
      spawnSync("umount", [pgdata]);
    }
  });
});

describe("isDiscarded", () => {
  test("matches only `.<name>.discarded-<pid>-<ms>`", () => {
    expect(isDiscarded("/a/pgdata", ".pgdata.discarded-12-34")).toBe(true);
    expect(isDiscarded("/a/pgdata/", ".pgdata.discarded-12-34")).toBe(true);
    expect(isDiscarded("/a/pgdata", "pgdata.discarded-12-34")).toBe(false);
    expect(isDiscarded("/a/pgdata", ".pgdata.discarded-12")).toBe(false);
    expect(isDiscarded("/a/pgdata", ".pgdata.discarded-12-34x")).toBe(false);
    expect(isDiscarded("/a/pgdata", ".pgdata2.discarded-12-34")).toBe(false);
  });
});
