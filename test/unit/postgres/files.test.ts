// line_in_file and the temporary override file, with the reference's vectors
// (compute_tools/tests/config_test.rs test_line_in_file).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  lineInFile,
  PG_HBA_MD5_LINE,
  TMP_OVERRIDE_FILE,
  withTmpOverride,
} from "../../../src/postgres/files.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "files-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const read = (p: string) => readFileSync(p, "utf8");

describe("lineInFile", () => {
  test("the reference's vectors", async () => {
    const path = join(dir, "config_test.txt");
    writeFileSync(path, "line1\nline2.1\t line2.2\nline3");

    expect(await lineInFile(path, "line2.1\t line2.2")).toBe(false);
    expect(read(path)).toBe("line1\nline2.1\t line2.2\nline3");

    expect(await lineInFile(path, "line4")).toBe(true);
    expect(read(path)).toBe("line1\nline2.1\t line2.2\nline3\nline4");

    const fresh = join(dir, "new_config_test.txt");
    expect(await lineInFile(fresh, "line4")).toBe(true);
    expect(read(fresh)).toBe("line4");
  });

  test("a second call with the same line changes nothing", async () => {
    const path = join(dir, "twice.txt");
    expect(await lineInFile(path, PG_HBA_MD5_LINE)).toBe(true);
    expect(await lineInFile(path, PG_HBA_MD5_LINE)).toBe(false);
    expect(read(path)).toBe("host\tall\t\tall\t\tall\t\tmd5");
  });

  test("an empty file gets the line without a newline before it", async () => {
    const path = join(dir, "empty.txt");
    writeFileSync(path, "");
    expect(await lineInFile(path, "a")).toBe(true);
    expect(read(path)).toBe("a");
  });

  test("a file ending in a newline gets an empty line before the new one", async () => {
    // pg_hba.conf from initdb ends with "\n": the reference writes "\n" + line regardless.
    const path = join(dir, "trailing.txt");
    writeFileSync(path, "local all all trust\n");
    expect(await lineInFile(path, "x")).toBe(true);
    expect(read(path)).toBe("local all all trust\n\nx");
  });

  test("lines match whole and with CRLF endings stripped, not by substring", async () => {
    const path = join(dir, "crlf.txt");
    writeFileSync(path, "abc\r\nsetting = 1\r\n");
    expect(await lineInFile(path, "abc")).toBe(false);
    expect(await lineInFile(path, "setting")).toBe(true);
    expect(read(path)).toBe("abc\r\nsetting = 1\r\n\nsetting");
  });

  test("an unterminated last line keeps its carriage return", async () => {
    const path = join(dir, "cr-last.txt");
    writeFileSync(path, "a\r");
    expect(await lineInFile(path, "a")).toBe(true);
    expect(read(path)).toBe("a\r\na");
  });
});

describe("withTmpOverride", () => {
  const override = () => join(dir, TMP_OVERRIDE_FILE);

  test("options are there (no newline) while f runs, truncated after", async () => {
    writeFileSync(override(), "stale content that is longer than the options");
    const seen = await withTmpOverride(dir, "neon.max_cluster_size=-1", async () => {
      return read(override());
    });
    expect(seen).toBe("neon.max_cluster_size=-1");
    expect(existsSync(override())).toBe(true);
    expect(statSync(override()).size).toBe(0);
  });

  test("truncated also when f throws, and the error is rethrown", async () => {
    const boom = new Error("apply failed");
    let seen = "";
    const run = withTmpOverride(dir, "a=1\nb=2", async () => {
      seen = read(override());
      throw boom;
    });
    await expect(run).rejects.toBe(boom);
    expect(seen).toBe("a=1\nb=2");
    expect(statSync(override()).size).toBe(0);
  });

  test("a missing PGDATA is an error before f runs", async () => {
    let ran = false;
    const run = withTmpOverride(join(dir, "nope"), "x=1", async () => {
      ran = true;
    });
    await expect(run).rejects.toThrow();
    expect(ran).toBe(false);
  });
});
