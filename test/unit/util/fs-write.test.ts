// Writes that name their file and never leave it half-written (src/util/fs-write.ts). The full
// disk itself is exercised as root on a tmpfs in test/e2e/disk-full.test.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isDiskFull, replaceFile, withPath } from "../../../src/util/fs-write.ts";
import { cleanup, makeUserDir } from "../../support/proc.ts";

afterAll(cleanup);

function errnoError(message: string, code: string, path?: string): NodeJS.ErrnoException {
  const e = new Error(message) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = "write";
  if (path !== undefined) e.path = path;
  return e;
}

describe("withPath", () => {
  test("adds the path to an errno error that has none, keeping its code", () => {
    const e = withPath(errnoError("ENOSPC: no space left on device, write", "ENOSPC"), "/d/f");
    expect((e as Error).message).toBe("ENOSPC: no space left on device, write '/d/f'");
    expect((e as NodeJS.ErrnoException).code).toBe("ENOSPC");
    expect((e as NodeJS.ErrnoException).path).toBe("/d/f");
  });

  test("leaves an error that names its path, and one without a code, as they are", () => {
    const named = errnoError("ENOENT: no such file or directory, open '/x'", "ENOENT", "/x");
    expect(withPath(named, "/y")).toBe(named);
    const plain = new Error("something else");
    expect(withPath(plain, "/y")).toBe(plain);
  });
});

describe("isDiskFull", () => {
  test("ENOSPC or EDQUOT anywhere in the cause chain", () => {
    const full = new Error("failed to get basebackup", { cause: errnoError("x", "ENOSPC") });
    expect(isDiskFull(full)).toBe(true);
    expect(isDiskFull(errnoError("x", "EDQUOT"))).toBe(true);
    expect(isDiskFull(new Error("reset", { cause: errnoError("x", "ECONNRESET") }))).toBe(false);
    expect(isDiskFull("ENOSPC")).toBe(false);
  });
});

describe("replaceFile", () => {
  test("replaces the file whole and leaves no temporary file", async () => {
    const dir = await makeUserDir("fs-write-");
    const path = join(dir, "postgresql.conf");
    writeFileSync(path, "old\n".repeat(1000));
    await replaceFile(path, "new\n");
    expect(readFileSync(path, "utf8")).toBe("new\n");
    expect(readdirSync(dir)).toEqual(["postgresql.conf"]);
  });

  test("a failure leaves the old file and no temporary, and names the file", async () => {
    const dir = await makeUserDir("fs-write-");
    const path = join(dir, "sub", "postgresql.conf");
    const err = await replaceFile(path, "x").then(
      () => null,
      (e: Error) => e,
    );
    expect((err as NodeJS.ErrnoException).code).toBe("ENOENT");
    expect(err?.message).toContain(join(dir, "sub"));
    expect(readdirSync(dir)).toEqual([]);
  });
});
