// The Postgres programs compute_ctl runs, all derived from --pgbin as the reference does:
// they are the siblings of the postgres binary (pg_ctl, initdb, pg_isready, pg_dump, pg_config).
import { realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { environment } from "../testing-knobs.ts";
import { spawnChild } from "../util/spawn.ts";

export interface PgTools {
  postgres: string;
  pgCtl: string;
  initdb: string;
  pgIsready: string;
  pgDump: string;
  pgConfig: string;
}

/** Major versions the reference accepts from `pg_config --version`. */
export const SUPPORTED_PG_MAJORS = [14, 15, 16, 17] as const;

/**
 * Derives the tool paths from --pgbin.
 *
 * - The file name must be exactly `postgres`. (The reference strips a `postgres` suffix to find
 *   pg_config and panics with "bad pgbin" when there is none; `/x/mypostgres` would give the
 *   nonsense `/x/my/pg_config`, so we require the whole name.)
 * - A path is made absolute against the cwd but symlinks are NOT followed: the siblings are taken
 *   from the directory given, as in the reference. Pass the real path when the binary is a symlink
 *   (e.g. /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres).
 * - A bare `postgres` (the default) is looked up on PATH, and its symlinks resolved, so that the
 *   siblings come from the real installation directory. (The reference would derive `/pg_config`
 *   and `/pg_isready` from it and panic.)
 */
export function resolvePgTools(pgbin: string, opts: { PATH?: string } = {}): PgTools {
  // Not path.basename: it would forgive a trailing '/', which names a directory.
  if (pgbin.split("/").pop() !== "postgres") {
    throw new ConfigError(
      `bad pgbin '${pgbin}': --pgbin must be the path of a binary named 'postgres'`,
    );
  }
  let postgres: string;
  if (!pgbin.includes("/")) {
    const found = Bun.which(pgbin, { PATH: opts.PATH ?? environment.path() ?? "" });
    if (!found) {
      throw new ConfigError(
        "bad pgbin 'postgres': not found on PATH; pass --pgbin (or POSTGRES_PATH) with a full path",
      );
    }
    postgres = realpathSync(found);
  } else {
    postgres = resolve(pgbin);
  }
  const dir = dirname(postgres);
  return {
    postgres,
    pgCtl: join(dir, "pg_ctl"),
    initdb: join(dir, "initdb"),
    pgIsready: join(dir, "pg_isready"),
    pgDump: join(dir, "pg_dump"),
    pgConfig: join(dir, "pg_config"),
  };
}

const PG_CONFIG_TIMEOUT_MS = 10_000;

/**
 * Runs `pg_config --version` and returns the major version (14–17). Anything else is a
 * ConfigError with one line: pg_config missing or failing, unparsable output, unsupported major.
 */
export async function pgMajorVersion(pgConfig: string): Promise<number> {
  let stdout: string;
  let stderr: string;
  let exitCode: number | null;
  try {
    const proc = spawnChild([pgConfig, "--version"], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      timeout: PG_CONFIG_TIMEOUT_MS,
    });
    [stdout, stderr, exitCode] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why =
      code === "ENOENT" ? "not found" : code === "EACCES" ? "not executable" : String(err);
    // `why` says it all; the spawn error would repeat it in other words.
    throw new ConfigError(`cannot run pg_config at ${pgConfig}: ${why}`);
  }
  const output = stdout.trim();
  // Pre-releases and --with-extra-version builds append text right after the number
  // ("PostgreSQL 17devel", "PostgreSQL 15.4foobar"), so only the leading digits are read. (The
  // reference's pattern also wants a character after the number, misreading "PostgreSQL 17".)
  const m = /^PostgreSQL (\d+)/.exec(output);
  if (!m) {
    const detail =
      exitCode !== 0
        ? `exited with ${exitCode ?? "a signal"}${stderr.trim() ? `: ${firstLine(stderr)}` : ""}`
        : `unexpected output '${firstLine(output)}'`;
    throw new ConfigError(`cannot read the Postgres version from ${pgConfig} --version: ${detail}`);
  }
  const major = Number(m[1]);
  if (!(SUPPORTED_PG_MAJORS as readonly number[]).includes(major)) {
    throw new ConfigError(
      `unsupported Postgres version ${major} ('${firstLine(output)}' from ${pgConfig}); supported: ${SUPPORTED_PG_MAJORS.join(", ")}`,
    );
  }
  return major;
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0] ?? "";
}
