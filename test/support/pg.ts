// A throwaway real Postgres 15 for tests that need SQL but not compute_ctl: initdb'ed with
// `cloud_admin` as the bootstrap superuser (as Neon's computes have), listening on a free port on
// 127.0.0.1 and a socket in its own directory, run as the postgres user when the tests are root.
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { freePort } from "./ports.ts";
import { collectStream, makeUserDir, type StreamBuffer, spawnAs, waitFor } from "./proc.ts";

export const PG_BINDIR = process.env.PG_BINDIR ?? "/usr/lib/postgresql/15/bin";

export interface TestPostgres {
  dir: string;
  pgdata: string;
  port: number;
  socketDir: string;
  /** postgresql://cloud_admin@127.0.0.1:PORT/postgres */
  url: string;
  /** A postgres.js client as cloud_admin (ended by stop()). */
  sql: Sql;
  /** Connects to another database or as another user. */
  connect(opts?: { database?: string; user?: string }): Sql;
  /** psql -c, returning stdout (for checks independent of our client library). */
  psql(command: string, database?: string): Promise<string>;
  /**
   * Runs a SQL script through one psql session (ON_ERROR_STOP; `PGOPTIONS` as compute_ctl's
   * forced options set them), returning its duration and stderr; throws when psql fails.
   */
  psqlScript(text: string, opts?: { pgoptions?: string }): Promise<{ ms: number; stderr: string }>;
  stop(): Promise<void>;
  /** The server's stderr as it arrives: its whole log while logging_collector is off. */
  serverLog?: StreamBuffer;
}

async function run(cmd: string[], what: string): Promise<string> {
  const p = spawnAs(cmd, { detached: false });
  const out = collectStream(p.stdout);
  const err = collectStream(p.stderr);
  const code = await p.exited;
  await Promise.all([out.done, err.done]);
  if (code !== 0) throw new Error(`${what} exited ${code}: ${err.text.slice(-2000)}`);
  return out.text;
}

export async function startTestPostgres(
  opts: { settings?: Record<string, string>; initdbArgs?: string[] } = {},
): Promise<TestPostgres> {
  const dir = await makeUserDir("pg-");
  const pgdata = join(dir, "data");
  const socketDir = dir;
  const port = await freePort();
  await run(
    [
      `${PG_BINDIR}/initdb`,
      "-D",
      pgdata,
      "-U",
      "cloud_admin",
      "--auth=trust",
      "--no-sync",
      ...(opts.initdbArgs ?? []),
    ],
    "initdb",
  );
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: "127.0.0.1",
    unix_socket_directories: socketDir,
    fsync: "off",
    ...opts.settings,
  };
  const args = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const proc = spawnAs([`${PG_BINDIR}/postgres`, "-D", pgdata, ...args]);
  const log = collectStream(proc.stderr, { prefix: "[test postgres] " });
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  await waitFor(
    async () => {
      if (exited) throw new Error(`postgres exited ${proc.exitCode}: ${log.text.slice(-2000)}`);
      const pid = await Bun.file(join(pgdata, "postmaster.pid"))
        .text()
        .catch(() => "");
      return pid.trimEnd().split("\n").at(-1)?.trim() === "ready";
    },
    { what: "the test postgres to be ready", timeoutMs: 30_000 },
  );
  const url = `postgresql://cloud_admin@127.0.0.1:${port}/postgres`;
  const connect = (o: { database?: string; user?: string } = {}) =>
    postgres({
      host: "127.0.0.1",
      port,
      user: o.user ?? "cloud_admin",
      database: o.database ?? "postgres",
      max: 2,
      fetch_types: false,
      onnotice: () => {},
    });
  const sql = connect();
  return {
    dir,
    pgdata,
    port,
    socketDir,
    url,
    sql,
    connect,
    psql: (command, database = "postgres") =>
      run(
        [
          `${PG_BINDIR}/psql`,
          "-X",
          "-At",
          "-v",
          "ON_ERROR_STOP=1",
          "-h",
          socketDir,
          "-p",
          String(port),
          "-U",
          "cloud_admin",
          "-d",
          database,
          "-c",
          command,
        ],
        "psql",
      ),
    serverLog: log,
    psqlScript: async (text, o = {}) => {
      const file = join(dir, `script-${Date.now()}-${Math.random().toString(36).slice(2)}.sql`);
      await Bun.write(file, text);
      const t0 = performance.now();
      const p = spawnAs(
        [
          `${PG_BINDIR}/psql`,
          ...["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", socketDir, "-p", String(port)],
          ...["-U", "cloud_admin", "-d", "postgres", "-f", file],
        ],
        { detached: false, stdout: "ignore", env: o.pgoptions ? { PGOPTIONS: o.pgoptions } : {} },
      );
      const err = collectStream(p.stderr);
      const code = await p.exited;
      const ms = performance.now() - t0;
      await err.done;
      if (code !== 0) throw new Error(`psql exited ${code}: ${err.text.slice(-1000)}`);
      return { ms, stderr: err.text };
    },
    stop: async () => {
      await sql.end({ timeout: 1 }).catch(() => {});
      proc.kill("SIGINT");
      await Promise.race([proc.exited, Bun.sleep(10_000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
    },
  };
}
