// A SQL-only stand-in for Neon's `neon` extension, so `CREATE EXTENSION neon` (which the apply
// runs and does not tolerate failing, like the reference) works on vanilla Postgres 15. Two ways:
// installNeonStub() puts it into the server's extension directory, which needs root (CI runs as
// root; the files are left in place, other test files may be using them concurrently, and a real
// neon.control is never overwritten); neonStubTree() needs no root: a per-user Postgres tree whose
// extension directory has the stub beside the real extensions.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { PG_BINDIR } from "./pg.ts";
import { removeQuietly, userTmpDir } from "./proc.ts";

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

function sharedirOf(bindir: string): string {
  const r = Bun.spawnSync([join(bindir, "pg_config"), "--sharedir"], { stdout: "pipe" });
  if (!r.success) throw new Error(`${bindir}/pg_config --sharedir failed`);
  return r.stdout.toString().trim();
}

/**
 * A Postgres tree with the neon stub, for a user who cannot write the system's extension
 * directory: `<user tmp>/pgtree-<key>/` laid out like the Debian packages (`usr/lib/postgresql/15`,
 * `usr/share/postgresql/15`), with a copy of `bin/` (13 MB: Postgres finds its share directory
 * from where its executable really is, so it cannot be a symlink), `lib/` and every share entry
 * symlinked, and `share/extension/` holding links to the real extensions plus the stub. Built
 * once per user and Postgres build; readable and executable by everyone (the postgres user runs
 * root's). Returns the bin directory.
 */
export function neonStubTree(realBindir = PG_BINDIR): string {
  const real = statSync(join(realBindir, "postgres"));
  const key = new Bun.CryptoHasher("sha256")
    .update(`${realBindir}\0${real.size}\0${real.mtimeMs}\0${CONTROL}\0${SCRIPT}`)
    .digest("hex")
    .slice(0, 12);
  const root = join(userTmpDir(), `pgtree-${key}`);
  const major = realBindir.match(/postgresql\/(\d+)\//)?.[1] ?? "15";
  const bindir = join(root, "usr/lib/postgresql", major, "bin");
  if (existsSync(join(bindir, "postgres"))) return bindir;

  const realShare = sharedirOf(realBindir);
  const build = `${root}.partial-${process.pid}`;
  removeQuietly(build);
  const lib = join(build, "usr/lib/postgresql", major);
  const share = join(build, "usr/share/postgresql", major);
  mkdirSync(join(lib, "bin"), { recursive: true, mode: 0o755 });
  mkdirSync(join(share, "extension"), { recursive: true, mode: 0o755 });
  for (const name of readdirSync(realBindir)) {
    const from = join(realBindir, name);
    const to = join(lib, "bin", name);
    const st = lstatSync(from);
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else {
      copyFileSync(from, to);
      chmodSync(to, st.mode & 0o777);
    }
  }
  symlinkSync(join(realBindir, "../lib"), join(lib, "lib"));
  for (const name of readdirSync(realShare)) {
    if (name !== "extension") symlinkSync(join(realShare, name), join(share, name));
  }
  for (const name of readdirSync(join(realShare, "extension"))) {
    if (name.startsWith("neon.") || name.startsWith("neon--")) continue;
    symlinkSync(join(realShare, "extension", name), join(share, "extension", name));
  }
  writeFileSync(join(share, "extension", "neon--1.6.sql"), SCRIPT, { mode: 0o644 });
  writeFileSync(join(share, "extension", "neon.control"), CONTROL, { mode: 0o644 });
  try {
    renameSync(build, root);
  } catch (err) {
    // Another process of this user built it meanwhile: theirs is as good.
    removeQuietly(build);
    if (!existsSync(join(bindir, "postgres"))) throw err;
  }
  return bindir;
}
