import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, UsageError } from "../../src/errors.ts";
import { pgMajorVersion, resolvePgTools } from "../../src/postgres/tools.ts";

const REAL_BIN = "/usr/lib/postgresql/15/bin";
const hasRealPg = await Bun.file(join(REAL_BIN, "pg_config")).exists();

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "pg-tools-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A fresh directory holding a script named `name` with the given shell body and mode. */
function script(dir: string, name: string, body: string, mode = 0o755): string {
  const full = join(tmp, dir);
  mkdirSync(full, { recursive: true });
  const path = join(full, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode });
  return path;
}

const fakePgConfig = (dir: string, body: string) => script(dir, "pg_config", body);

async function configError(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  expect(caught).not.toBeInstanceOf(UsageError);
  const message = (caught as Error).message;
  expect(message).not.toContain("\n");
  for (const f of fragments) expect(message).toContain(f);
}

describe("resolvePgTools", () => {
  test("the tools are the siblings of an absolute --pgbin", () => {
    const t = resolvePgTools("/opt/pg/bin/postgres");
    expect(t).toEqual({
      postgres: "/opt/pg/bin/postgres",
      pgCtl: "/opt/pg/bin/pg_ctl",
      initdb: "/opt/pg/bin/initdb",
      pgIsready: "/opt/pg/bin/pg_isready",
      pgDump: "/opt/pg/bin/pg_dump",
      pgConfig: "/opt/pg/bin/pg_config",
    });
  });

  test("a relative --pgbin is made absolute against the cwd", () => {
    const t = resolvePgTools("bin/postgres");
    expect(t.postgres).toBe(join(process.cwd(), "bin/postgres"));
    expect(t.pgConfig).toBe(join(process.cwd(), "bin/pg_config"));
  });

  test("symlinks in an explicit path are not followed (as in the reference)", () => {
    const dir = join(tmp, "links");
    mkdirSync(dir, { recursive: true });
    const link = join(dir, "postgres");
    symlinkSync("/nonexistent/bin/postgres", link);
    expect(resolvePgTools(link).pgCtl).toBe(join(dir, "pg_ctl"));
  });

  test("a --pgbin not named postgres is a one-line ConfigError", () => {
    for (const bad of ["/usr/bin/pg", "/x/mypostgres", "/x/postgres/", "/x/postgres-wrapper", ""]) {
      let caught: unknown;
      try {
        resolvePgTools(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toContain("bad pgbin");
    }
  });

  test("a bare postgres is found on PATH and its real directory gives the siblings", () => {
    // A PATH entry holding only a symlink to a postgres elsewhere: the siblings must come from
    // the link's target directory, not from the PATH entry.
    const realDir = join(tmp, "real-install", "bin");
    script("real-install/bin", "postgres", "exit 0");
    const pathDir = join(tmp, "path-entry");
    mkdirSync(pathDir, { recursive: true });
    symlinkSync(join(realDir, "postgres"), join(pathDir, "postgres"));

    const t = resolvePgTools("postgres", { PATH: `/nonexistent:${pathDir}` });
    const real = realpathSync(realDir);
    expect(t.postgres).toBe(join(real, "postgres"));
    expect(t.pgConfig).toBe(join(real, "pg_config"));
    expect(t.pgIsready).toBe(join(real, "pg_isready"));
  });

  test("a bare postgres not on PATH is a ConfigError", () => {
    expect(() => resolvePgTools("postgres", { PATH: join(tmp, "empty") })).toThrow(ConfigError);
  });

  test.skipIf(!hasRealPg)("the real Postgres 15 installation", () => {
    const t = resolvePgTools(join(REAL_BIN, "postgres"));
    expect(t.pgConfig).toBe(join(REAL_BIN, "pg_config"));
  });
});

describe("pgMajorVersion", () => {
  test.skipIf(!hasRealPg)("reads the real pg_config", async () => {
    const out = Bun.spawnSync([join(REAL_BIN, "pg_config"), "--version"]).stdout.toString();
    const expected = Number(/^PostgreSQL (\d+)/.exec(out)![1]);
    expect(await pgMajorVersion(join(REAL_BIN, "pg_config"))).toBe(expected);
    expect(await pgMajorVersion(resolvePgTools(join(REAL_BIN, "postgres")).pgConfig)).toBe(
      expected,
    );
  });

  test("accepts 14 to 17, with the suffixes real builds print", async () => {
    const cases: [string, number][] = [
      ["PostgreSQL 14.12", 14],
      ["PostgreSQL 15.4 (Debian 15.4-1)", 15],
      ["PostgreSQL 16beta2", 16],
      ["PostgreSQL 17devel", 17],
      ["PostgreSQL 17", 17],
    ];
    for (const [i, [line, major]] of cases.entries()) {
      const pgConfig = fakePgConfig(`ok-${i}`, `echo '${line}'`);
      expect(await pgMajorVersion(pgConfig)).toBe(major);
    }
  });

  test("passes --version to pg_config", async () => {
    const pgConfig = fakePgConfig(
      "args",
      `[ "$1" = "--version" ] && echo 'PostgreSQL 16.1' || echo "wrong args: $*"`,
    );
    expect(await pgMajorVersion(pgConfig)).toBe(16);
  });

  test("an unsupported version names it", async () => {
    await configError(
      pgMajorVersion(fakePgConfig("v13", "echo 'PostgreSQL 13.1'")),
      "unsupported",
      "13",
    );
    await configError(pgMajorVersion(fakePgConfig("v18", "echo 'PostgreSQL 18.0'")), "18");
  });

  test("unparsable output", async () => {
    await configError(
      pgMajorVersion(fakePgConfig("garbage", "echo 'EnterpriseDB 9000'")),
      "EnterpriseDB 9000",
    );
    await configError(pgMajorVersion(fakePgConfig("empty", "true")), "pg_config");
  });

  test("a failing pg_config reports its exit and stderr", async () => {
    await configError(
      pgMajorVersion(fakePgConfig("fails", "echo 'boom' >&2; exit 3")),
      "exited with 3",
      "boom",
    );
  });

  test("a missing or non-executable pg_config", async () => {
    const missing = join(tmp, "missing", "pg_config");
    await configError(pgMajorVersion(missing), missing, "not found");
    const noExec = script("noexec", "pg_config", "echo 'PostgreSQL 15.1'", 0o644);
    // root may execute a file without an x bit only if some x bit is set; none is here.
    await configError(pgMajorVersion(noExec), noExec);
  });
});
