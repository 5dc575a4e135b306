// A SQL-only stand-in for Neon's `neon` extension, so `CREATE EXTENSION neon` (which the apply
// runs and does not tolerate failing, like the reference) works on vanilla Postgres 15. It is
// installed into the server's extension directory, which needs root; CI runs as root. The files
// are left in place (other test files may be using them concurrently) and a real neon.control is
// never overwritten.
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PG_BINDIR } from "./pg.ts";

const MARKER = "# compute_ctl test stub";

const CONTROL = `${MARKER}
comment = 'stand-in for the neon extension in compute_ctl tests'
default_version = '1.6'
relocatable = true
trusted = true
`;

// Five columns, like the real view that test_neon_extension looks at.
const SCRIPT = `-- compute_ctl test stub of neon 1.6
CREATE VIEW neon_stat_file_cache AS
  SELECT 0::int8 AS file_cache_misses, 0::int8 AS file_cache_hits, 0::int8 AS file_cache_used,
         0::int8 AS file_cache_writes, 0::float8 AS file_cache_hit_ratio;
`;

export type StubResult = { installed: true } | { installed: false; reason: string };

/** Installs the stub if missing. Without root it reports why instead of failing. */
export function installNeonStub(): StubResult {
  const r = Bun.spawnSync([join(PG_BINDIR, "pg_config"), "--sharedir"], { stdout: "pipe" });
  const sharedir = r.success ? r.stdout.toString().trim() : "/usr/share/postgresql/15";
  const dir = join(sharedir, "extension");
  const control = join(dir, "neon.control");
  // Ours from an earlier run, or a real neon extension (better still).
  if (existsSync(control)) return { installed: true };
  if (process.getuid?.() !== 0) {
    return {
      installed: false,
      reason: `not root: cannot install the neon stub extension into ${dir}; run the tests as root`,
    };
  }
  // Renamed into place so a concurrent test never sees a half-written file.
  const put = (path: string, text: string) => {
    writeFileSync(`${path}.${process.pid}.tmp`, text);
    renameSync(`${path}.${process.pid}.tmp`, path);
  };
  put(join(dir, "neon--1.6.sql"), SCRIPT);
  put(control, CONTROL);
  return { installed: true };
}
