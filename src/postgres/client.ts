// Connections to the local Postgres. Every one carries the reference's forced options, so a
// database with `ALTER DATABASE … SET` traps (search_path, default_transaction_read_only,
// statement_timeout) cannot break or hijack what compute_ctl runs; options from the connstr come
// after them and so win. Each feature names itself in application_name.
import type { Sql } from "postgres";
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import { postgresJs } from "./driver.ts";

export function forcedOptions(role: string): string {
  return `-c role=${role} -c default_transaction_read_only=off -c search_path='' -c statement_timeout=0 -c pgaudit.log=none`;
}

/** The libpq `options` for a connection: forced options first, then the connstr's own. */
export function connectionOptions(connstr: URL, role = "cloud_admin"): string {
  const own = connstr.searchParams.get("options");
  return own ? `${forcedOptions(role)} ${own}` : forcedOptions(role);
}

export interface LocalConnectOptions {
  /** e.g. `compute_ctl:apply_config`. */
  applicationName: string;
  /** Pool size; most features need one connection. */
  max?: number;
  /** Connect as this user instead of the connstr's (the zenith_admin fallback). */
  user?: string;
  database?: string;
  connectTimeoutSeconds?: number;
  /** More `-c` options after the forced ones and the connstr's (later ones win). */
  extraOptions?: string;
}

/** A postgres.js client for the local Postgres (lazy: it connects on first use). */
export function localClient(connstr: URL, opts: LocalConnectOptions): Sql {
  const url = new URL(connstr.href);
  // postgres.js lets URL parameters override `connection`; these two are set below instead.
  url.searchParams.delete("options");
  url.searchParams.delete("application_name");
  // postgres.js does not percent-decode the URL's user and database: pass them decoded.
  const user = opts.user ?? (decodeURIComponent(connstr.username) || "cloud_admin");
  const database = opts.database ?? (decodeURIComponent(connstr.pathname.slice(1)) || "postgres");
  const role = user;
  return postgresJs()(url.href, {
    user,
    database,
    max: opts.max ?? 1,
    connect_timeout: opts.connectTimeoutSeconds ?? 10,
    idle_timeout: 30,
    // Type lookups are an extra query on every connection, and nothing here needs custom types.
    fetch_types: false,
    prepare: false,
    onnotice: (n) => log.debug(`postgres notice: ${n.message}`),
    connection: {
      application_name: opts.applicationName,
      options: [
        connectionOptions(connstr, role === "zenith_admin" ? "zenith_admin" : "cloud_admin"),
        opts.extraOptions,
      ]
        .filter(Boolean)
        .join(" "),
    },
  });
}

const AUTH_FAILURES = new Set(["28P01", "28000"]);

/**
 * The maintenance connection used to apply the spec: `SET neon.forward_ddl = false` right after
 * connecting. If `cloud_admin` cannot log in (an old image), log in as `zenith_admin`, create
 * `cloud_admin` as a superuser, and reconnect, as the reference does.
 */
export async function maintenanceClient(
  connstr: URL,
  applicationName = "compute_ctl:apply_config",
  extraOptions?: string,
): Promise<Sql> {
  const sql = localClient(connstr, { applicationName, extraOptions });
  try {
    await sql.unsafe("SET neon.forward_ddl = false").simple();
    return sql;
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {});
    const code = (err as { code?: string }).code;
    if (!code || !AUTH_FAILURES.has(code)) throw err;
    log.warn(`cannot connect as cloud_admin (${formatOneLine(err)}), trying zenith_admin`);
  }
  const admin = localClient(connstr, { applicationName, user: "zenith_admin" });
  try {
    await admin.unsafe("SET neon.forward_ddl = false").simple();
    await admin.unsafe("CREATE USER cloud_admin WITH SUPERUSER").simple();
    await admin.unsafe("GRANT zenith_admin TO cloud_admin").simple();
  } finally {
    await admin.end({ timeout: 1 }).catch(() => {});
  }
  const again = localClient(connstr, { applicationName, extraOptions });
  await again.unsafe("SET neon.forward_ddl = false").simple();
  return again;
}
