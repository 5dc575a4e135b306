// pgbouncer: the spec's pgbouncer_settings go into the [pgbouncer] section of its ini file, then
// RELOAD on the admin console makes pgbouncer re-read the file. Where the file lives and how the
// console is reached depend on the kind of host: a NeonVM (AUTOSCALING set) runs pgbouncer as the
// same user, so the console's Unix socket admits user `pgbouncer` without a password; a pod
// reaches it over TCP as `postgres` with PGBOUNCER_PASSWORD.
import { readFile, stat, writeFile } from "node:fs/promises";
import { iniSettingProblem } from "../api/sidecar-values.ts";
import type { TlsConfig } from "../api/spec.ts";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { type ConnectOptions, PqConnection } from "../storage/pq.ts";
import { hostPath } from "../util/host.ts";

export interface PgbouncerTarget {
  iniPath: string;
  admin: ConnectOptions;
}

/** The ini file and admin-console connection for this host. */
export function pgbouncerTarget(opts: {
  autoscaling: boolean;
  password: string | null;
  port: number;
}): PgbouncerTarget {
  if (opts.autoscaling) {
    return {
      iniPath: hostPath("/etc/pgbouncer.ini"),
      admin: { host: hostPath("/tmp"), port: opts.port, user: "pgbouncer", database: "pgbouncer" },
    };
  }
  return {
    iniPath: hostPath("/var/db/postgres/pgbouncer/pgbouncer.ini"),
    admin: {
      host: "localhost",
      port: opts.port,
      user: "postgres",
      database: "pgbouncer",
      password: opts.password,
    },
  };
}

function sectionName(line: string): string | null {
  const m = /^\s*\[([^\]]*)\]\s*$/.exec(line);
  return m ? (m[1] ?? "").trim().toLowerCase() : null;
}

function lineKey(line: string): string | null {
  const t = line.trimStart();
  if (t === "" || t.startsWith(";") || t.startsWith("#")) return null;
  const eq = t.indexOf("=");
  return eq < 0 ? null : t.slice(0, eq).trim().toLowerCase();
}

/**
 * `text` with each setting set in its [pgbouncer] section: an existing key (pgbouncer compares
 * keys case-insensitively) is replaced in place and its later duplicates dropped, a new key is
 * appended to the section. Comments and other sections are kept as they are.
 */
export function rewritePgbouncerIni(text: string, settings: [string, string][]): string {
  for (const [k, v] of settings) {
    const problem = iniSettingProblem(k, v);
    if (problem) throw new Error(problem);
  }
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((l) => sectionName(l) === "pgbouncer");
  if (start < 0) throw new Error("the pgbouncer ini file has no [pgbouncer] section");
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (sectionName(lines[i] ?? "") !== null) {
      end = i;
      break;
    }
  }
  const section = lines.slice(start + 1, end);
  const pending = new Map(settings.map(([k, v]) => [k.toLowerCase(), `${k}=${v}`]));
  const written = new Set<string>();
  const out: string[] = [];
  for (const line of section) {
    const key = lineKey(line);
    if (key !== null && pending.has(key)) {
      if (!written.has(key)) out.push(pending.get(key) as string);
      written.add(key);
    } else {
      out.push(line);
    }
  }
  // New keys go after the section's last non-blank line.
  let at = out.length;
  while (at > 0 && (out[at - 1] ?? "").trim() === "") at--;
  const added = [...pending].filter(([k]) => !written.has(k)).map(([, line]) => line);
  out.splice(at, 0, ...added);
  return [...lines.slice(0, start + 1), ...out, ...lines.slice(end)].join(eol);
}

export interface TuneOptions {
  settings: Record<string, string>;
  /** With TLS, pgbouncer gets the key and certificate once the key file exists. */
  tls: TlsConfig | null;
  target: PgbouncerTarget;
  /** Connection attempts to the admin console (4) and the pause between them (1 s). */
  attempts?: number;
  retryDelayMs?: number;
  /** How often to look for the TLS key (500 ms). */
  keyPollMs?: number;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });

function describeAdmin(a: ConnectOptions): string {
  const pw = a.password != null ? " password=<hidden>" : "";
  return `host=${a.host} port=${a.port} dbname=${a.database} user=${a.user}${pw}`;
}

async function connectAdmin(opts: TuneOptions): Promise<PqConnection> {
  const attempts = opts.attempts ?? 4;
  const { admin } = opts.target;
  log.info(`connecting to the pgbouncer admin console: ${describeAdmin(admin)}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await PqConnection.connect({ ...admin, timeoutMs: 10_000, signal: opts.signal });
    } catch (err) {
      if (attempt >= attempts || opts.signal?.aborted) {
        throw new Error(
          `could not connect to the pgbouncer admin console after ${attempt} attempts`,
          {
            cause: err,
          },
        );
      }
      log.warn(`failed to connect to pgbouncer (attempt ${attempt}): ${formatOneLine(err)}`);
      await sleep(opts.retryDelayMs ?? 1000, opts.signal);
    }
  }
}

/**
 * Connects to the admin console (so a pgbouncer that is not up yet gets its retries), waits for
 * the TLS key when TLS is on, rewrites the ini file and sends RELOAD. A failed RELOAD is logged;
 * any earlier failure is thrown.
 */
export async function tunePgbouncer(opts: TuneOptions): Promise<void> {
  const conn = await connectAdmin(opts);
  try {
    const settings = Object.entries(opts.settings);
    if (opts.tls) {
      // pgbouncer without its key file falls back to refusing TLS clients: wait for the key.
      const { key_path, cert_path } = opts.tls;
      while (
        !(await stat(key_path).then(
          () => true,
          () => false,
        ))
      ) {
        await sleep(opts.keyPollMs ?? 500, opts.signal);
      }
      const tls: [string, string][] = [
        ["client_tls_cert_file", cert_path],
        ["client_tls_key_file", key_path],
        ["client_tls_sslmode", "allow"],
      ];
      const names = new Set(tls.map(([k]) => k));
      settings.splice(0, settings.length, ...settings.filter(([k]) => !names.has(k)), ...tls);
    }
    const { iniPath } = opts.target;
    let text: string;
    try {
      text = await readFile(iniPath, "utf8");
    } catch (err) {
      throw new Error(`could not read ${iniPath}`, { cause: err });
    }
    const updated = rewritePgbouncerIni(text, settings);
    try {
      await writeFile(iniPath, updated);
    } catch (err) {
      throw new Error(`could not write ${iniPath}`, { cause: err });
    }
    log.info(`applying pgbouncer settings: ${settings.map(([k]) => k).join(", ")}`);
    try {
      await conn.simpleQuery("RELOAD");
    } catch (err) {
      log.error(`failed to apply the pgbouncer settings with RELOAD: ${formatOneLine(err)}`);
    }
  } finally {
    await conn.close().catch(() => {});
  }
}
