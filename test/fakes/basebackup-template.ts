// The basebackup the fake pageserver serves: a gzip tar shaped like a real one, made from `initdb -U cloud_admin` after one clean start and fast stop, so pg_wal holds a
// shutdown checkpoint vanilla Postgres 15 can start from. Left out, as a pageserver leaves them
// out: postgresql.conf, postmaster.pid, postmaster.opts. Added: neon.signal and zenith.signal, and
// Neon's sample pg_hba.conf. GNU headers and gzip level 1, as the pageserver writes them.
//
// Built once per set of options and cached across processes in this user's temp directory (the
// initdb takes seconds, a padded one much longer); tar and gzip stream from disk, so a 2 GiB
// padding never sits in memory.
import { existsSync } from "node:fs";
import { mkdir, open, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "../support/ports.ts";
import { makeUserDir, spawnAs, userTmpDir, waitFor } from "../support/proc.ts";

export const PG_BINDIR = "/usr/lib/postgresql/15/bin";

/** Bump when the template's recipe changes, so stale caches are not reused. */
const RECIPE = "v2";

/** This user's template cache: another user's cache is never read or written. */
export function templateCacheDir(): string {
  return join(userTmpDir(), "basebackup-templates");
}

// Neon's sample (libs/postgres_ffi/samples/pg_hba.conf): trust for local and loopback, for
// ordinary and replication connections.
export const NEON_SAMPLE_PG_HBA = `# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
`;

/** What the pageserver writes when it has no previous-record LSN at a branch point. */
export const SIGNAL_CONTENT = "PREV LSN: none";

export interface TemplateOptions {
  /**
   * Bytes of padding added as an orphan relation (`base/5/999999`, 1 GiB segments `.1`, `.2` …)
   * to grow the tar: zero-filled by default (compresses to almost nothing).
   */
  padBytes?: number;
  /** `"mixed"`: pseudo-random page-like data that gzip -1 shrinks about 3:1 (for benchmarks). */
  padContent?: "zeros" | "mixed";
  /** Leave `pg_dynshmem/` out (a basebackup the compute must reject after unpacking). */
  withoutDynshmem?: boolean;
  /** SQL run (psql, database postgres) while the template's Postgres is up, e.g. stand-ins. */
  initSql?: string;
}

export interface Template {
  tarGzPath: string;
  /** "Latest checkpoint location" of the shutdown checkpoint, e.g. "0/14E8F40". */
  checkpointLsn: string;
}

const building = new Map<string, Promise<Template>>();

/** The template tarball for `opts`, built on first use (per process and cached on disk). */
export function basebackupTemplate(opts: TemplateOptions = {}): Promise<Template> {
  const pad = opts.padBytes ?? 0;
  const content = pad > 0 ? (opts.padContent ?? "zeros") : "none";
  const sqlKey = opts.initSql
    ? `-sql${new Bun.CryptoHasher("sha256").update(opts.initSql).digest("hex").slice(0, 12)}`
    : "";
  const key = `${RECIPE}-pad${pad}-${content}${opts.withoutDynshmem ? "-nodynshmem" : ""}${sqlKey}`;
  let p = building.get(key);
  if (!p) {
    p = build(key, pad, content, !!opts.withoutDynshmem, opts.initSql);
    building.set(key, p);
    p.catch(() => building.delete(key));
  }
  return p;
}

async function run(cmd: string[], what: string, timeoutMs: number): Promise<string> {
  const p = spawnAs(cmd, { detached: false });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${what} exited with ${code}: ${err.trim() || out.trim()}`);
  return out;
}

async function build(
  key: string,
  pad: number,
  content: string,
  noDynshmem: boolean,
  initSql?: string,
) {
  const cacheDir = templateCacheDir();
  const tarGzPath = join(cacheDir, `${key}.tar.gz`);
  const lsnPath = join(cacheDir, `${key}.lsn`);
  if (existsSync(tarGzPath) && existsSync(lsnPath)) {
    return { tarGzPath, checkpointLsn: (await Bun.file(lsnPath).text()).trim() };
  }
  await mkdir(cacheDir, { recursive: true });
  const work = await makeUserDir("bbtpl-");
  try {
    const pgdata = join(work, "pgdata");
    await run(
      [
        `${PG_BINDIR}/initdb`,
        ...["-D", pgdata, "-U", "cloud_admin", "--auth=trust", "--no-sync"],
        ...["-E", "UTF8", "--locale=C.UTF-8"],
      ],
      "initdb",
      120_000,
    );
    await startAndStop(pgdata, work, initSql);
    const checkpointLsn = await checkpointOf(pgdata);

    for (const f of ["postgresql.conf", "postmaster.pid", "postmaster.opts"]) {
      await rm(join(pgdata, f), { force: true });
    }
    if (noDynshmem) await rm(join(pgdata, "pg_dynshmem"), { recursive: true, force: true });
    await writeFile(join(pgdata, "pg_hba.conf"), NEON_SAMPLE_PG_HBA);
    await writeFile(join(pgdata, "neon.signal"), SIGNAL_CONTENT);
    await writeFile(join(pgdata, "zenith.signal"), SIGNAL_CONTENT);
    if (pad > 0) await writePadding(join(pgdata, "base", "5"), pad, content === "mixed");

    // Owner 0 in the archive: whoever extracts it owns the files (ownership is not restored).
    const entries = (await readdir(pgdata)).sort();
    const tmp = `${tarGzPath}.${process.pid}.${Date.now()}.tmp`;
    const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    const script =
      `set -o pipefail; tar -C ${q(pgdata)} --format=gnu --owner=0 --group=0 --numeric-owner ` +
      `-cf - -- ${entries.map(q).join(" ")} | gzip -1 > ${q(tmp)}`;
    const tar = Bun.spawn(["bash", "-c", script], { stdout: "ignore", stderr: "pipe" });
    const timer = setTimeout(() => tar.kill("SIGKILL"), 30 * 60_000);
    const [err, code] = await Promise.all([new Response(tar.stderr).text(), tar.exited]);
    clearTimeout(timer);
    if (code !== 0) {
      await rm(tmp, { force: true });
      throw new Error(`tar | gzip exited with ${code}: ${err.trim()}`);
    }
    await writeFile(lsnPath, `${checkpointLsn}\n`);
    await rename(tmp, tarGzPath); // atomic: a concurrent builder's result is equally good
    return { tarGzPath, checkpointLsn };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** One clean start and fast stop, so the cluster ends with a shutdown checkpoint. */
async function startAndStop(pgdata: string, socketDir: string, initSql?: string): Promise<void> {
  const port = await freePort();
  const pg = spawnAs(
    [
      `${PG_BINDIR}/postgres`,
      ...["-D", pgdata, "-p", String(port)],
      ...["-c", `unix_socket_directories=${socketDir}`, "-c", "listen_addresses="],
    ],
    { stdout: "ignore", stderr: "pipe", detached: false },
  );
  const stderr = new Response(pg.stderr).text();
  try {
    await waitFor(
      async () => {
        if (pg.exitCode !== null) throw new Error(`postgres exited: ${await stderr}`);
        const pid = Bun.file(join(pgdata, "postmaster.pid"));
        if (!(await pid.exists())) return false;
        const lines = (await pid.text()).trimEnd().split("\n");
        return lines[lines.length - 1]?.trim() === "ready";
      },
      { timeoutMs: 60_000, what: "the template's postgres to be ready" },
    );
    if (initSql) {
      const sqlFile = join(socketDir, "init.sql");
      await writeFile(sqlFile, initSql);
      await run(
        [
          `${PG_BINDIR}/psql`,
          ...["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", socketDir, "-p", String(port)],
          ...["-U", "cloud_admin", "-d", "postgres", "-f", sqlFile],
        ],
        "psql (template init SQL)",
        60_000,
      );
    }
    pg.kill("SIGINT"); // fast shutdown: writes the shutdown checkpoint
    const code = await Promise.race([pg.exited, Bun.sleep(60_000).then(() => "timeout")]);
    if (code !== 0) throw new Error(`postgres fast stop ended with ${code}: ${await stderr}`);
  } finally {
    if (pg.exitCode === null) {
      pg.kill("SIGKILL");
      await pg.exited;
    }
  }
}

async function checkpointOf(pgdata: string): Promise<string> {
  const out = await run([`${PG_BINDIR}/pg_controldata`, pgdata], "pg_controldata", 30_000);
  const state = out.match(/^Database cluster state:\s+(.+)$/m)?.[1];
  if (state !== "shut down") throw new Error(`template cluster state is ${state}, not shut down`);
  const lsn = out.match(/^Latest checkpoint location:\s+([0-9A-F]+\/[0-9A-F]+)$/m)?.[1];
  if (!lsn) throw new Error(`no checkpoint location in pg_controldata output:\n${out}`);
  return lsn;
}

const SEGMENT = 1 << 30;
const CHUNK = 4 << 20;

/** Orphan relation segments totalling `bytes`: sparse zeros, or page-like data written in chunks. */
async function writePadding(dir: string, bytes: number, mixed: boolean): Promise<void> {
  let seed = 0x9e3779b9;
  const chunk = new Uint8Array(CHUNK);
  for (let seg = 0, left = bytes; left > 0; seg++) {
    const size = Math.min(SEGMENT, left);
    left -= size;
    const fh = await open(join(dir, seg === 0 ? "999999" : `999999.${seg}`), "w", 0o600);
    try {
      if (!mixed) {
        await fh.truncate(size); // a hole: tar reads it as zeros without storing them here
        continue;
      }
      for (let off = 0; off < size; off += CHUNK) {
        const n = Math.min(CHUNK, size - off);
        seed = fillMixed(chunk, n, seed);
        await fh.write(chunk, 0, n, off);
      }
    } finally {
      await fh.close();
    }
  }
}

// Per 8 KiB page: 5.5 KiB drawn from a skewed 16-symbol distribution and zeroed free space after
// it, which gzip -1 compresses about 3:1, roughly like heap pages of mixed columns.
const SYMBOLS = new Uint8Array([0, 0, 0, 0, 0, 0, 32, 32, 48, 49, 50, 97, 101, 255, 7, 64]);
const PAGE_USED = 5632;

function fillMixed(buf: Uint8Array, n: number, seed: number): number {
  let x = seed >>> 0;
  for (let page = 0; page < n; page += 8192) {
    const end = Math.min(page + 8192, n);
    const used = Math.min(end, page + PAGE_USED);
    for (let i = page; i < used; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      buf[i] = SYMBOLS[x & 15] as number;
      buf[i + 1] = SYMBOLS[(x >>> 4) & 15] as number;
      buf[i + 2] = SYMBOLS[(x >>> 8) & 15] as number;
      buf[i + 3] = SYMBOLS[(x >>> 12) & 15] as number;
    }
    buf.fill(0, used, end);
  }
  return x;
}
