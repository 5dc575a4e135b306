// A real pgbouncer (Debian's 1.18) for tests, run as the postgres user from its own directory:
// an ini like the compute image's, minus the keys 1.18 rejects (auth_dbname,
// max_prepared_statements), on a free port with its Unix socket in that directory.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { writeUserFile } from "./compute.ts";
import { freePort } from "./ports.ts";
import { collectStream, makeUserDir, type StreamBuffer, spawnAs, waitFor } from "./proc.ts";

export interface TestPgbouncer {
  dir: string;
  port: number;
  ini: string;
  pidfile: string;
  proc: Subprocess;
  log: StreamBuffer;
  /** `SHOW CONFIG` value of `key`, asked over the Unix socket as the postgres user. */
  show(key: string): Promise<string>;
  stop(): Promise<void>;
}

export interface PgbouncerOptions {
  /** The directory (default: a new one); the ini is written to `<dir>/<iniName>`. */
  dir?: string;
  iniPath?: string;
  /** auth: "trust" (default) or a password for user postgres (auth_type=plain, auth_file). */
  password?: string;
  /** Extra lines in the [pgbouncer] section. */
  extra?: string[];
}

export async function startPgbouncer(opts: PgbouncerOptions = {}): Promise<TestPgbouncer> {
  const dir = opts.dir ?? (await makeUserDir("pgbouncer-"));
  const port = await freePort();
  const ini = opts.iniPath ?? join(dir, "pgbouncer.ini");
  const pidfile = join(dir, "pgbouncer.pid");
  // Even trust needs the user in auth_file.
  const auth = [
    `auth_type = ${opts.password ? "plain" : "trust"}`,
    `auth_file = ${join(dir, "userlist.txt")}`,
  ];
  await writeUserFile(join(dir, "userlist.txt"), `"postgres" "${opts.password ?? ""}"\n`);
  await writeUserFile(
    ini,
    [
      "; the compute image's pgbouncer.ini, for tests",
      "[databases]",
      "*=host=localhost port=5432 auth_user=cloud_admin application_name=pgbouncer",
      "",
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      ...auth,
      "pool_mode = transaction",
      "default_pool_size = 64",
      "; the admin console's users",
      "admin_users = postgres",
      `unix_socket_dir = ${dir}`,
      "unix_socket_mode = 0777",
      `pidfile = ${pidfile}`,
      "log_connections = 0",
      "log_disconnections = 0",
      ...(opts.extra ?? []),
      "",
    ].join("\n"),
  );
  const proc = spawnAs(["/usr/sbin/pgbouncer", ini]);
  const log = collectStream(proc.stderr, { prefix: "[pgbouncer] " });
  collectStream(proc.stdout, { prefix: "[pgbouncer stdout] " });
  await waitFor(() => existsSync(join(dir, `.s.PGSQL.${port}`)), {
    what: "pgbouncer's socket",
    timeoutMs: 10_000,
  });
  return {
    dir,
    port,
    ini,
    pidfile,
    proc,
    log,
    async show(key: string) {
      const p = spawnAs(
        [
          "psql",
          "-X",
          "-At",
          "-h",
          dir,
          "-p",
          String(port),
          "-U",
          "pgbouncer",
          "pgbouncer",
          "-c",
          "SHOW CONFIG",
        ],
        { env: { PGPASSWORD: opts.password } },
      );
      const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
      if ((await p.exited) !== 0) throw new Error(`psql SHOW CONFIG: ${err}`);
      const row = out.split("\n").find((l) => l.startsWith(`${key}|`));
      if (!row) throw new Error(`no ${key} in SHOW CONFIG`);
      return row.split("|")[1] ?? "";
    },
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
