// The local file cache's size, set over one Postgres connection per agent connection:
// `ALTER SYSTEM SET neon.file_cache_size_limit` then `pg_reload_conf()`, capped by
// `neon.max_file_cache_size`. Both GUCs are in MB.
import type { Sql } from "postgres";
import { formatOneLine } from "../errors.ts";
import { postgresJs } from "../postgres/driver.ts";
import type { FileCacheConnOptions } from "./connstr.ts";
import { MiB } from "./sizing.ts";

export interface SetSizeResult {
  /** The size set, in bytes (whole MiB). */
  bytes: number;
  /** The request exceeded neon.max_file_cache_size. */
  capped: boolean;
  maxBytes: number;
}

export class FileCache {
  readonly #sql: Sql;

  constructor(
    opts: FileCacheConnOptions,
    private readonly log: { error(m: string): void; info(m: string): void },
  ) {
    this.#sql = postgresJs()({
      host: opts.host,
      port: opts.port,
      path: opts.path,
      database: opts.database,
      username: opts.username,
      password: opts.password,
      ssl: false,
      max: 1,
      // The connection is kept for as long as the agent's.
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: opts.connectTimeout ?? 30,
      fetch_types: false,
      prepare: false,
      onnotice: () => {},
      connection: {
        application_name: opts.applicationName,
        ...(opts.options ? { options: opts.options } : {}),
      },
    });
  }

  /** `pg_size_bytes(current_setting(guc))`; on failure it tries once more on a new connection. */
  async #sizeSetting(guc: string): Promise<number> {
    const text = `SELECT pg_size_bytes(current_setting('${guc}'))::text AS bytes`;
    let rows: { bytes: string }[];
    try {
      rows = await this.#sql.unsafe<{ bytes: string }[]>(text).simple();
    } catch (err) {
      // postgres.js opens a new connection for the next query when the last one broke.
      this.log.error(`postgres error -> retrying: ${formatOneLine(err)}`);
      rows = await this.#sql.unsafe<{ bytes: string }[]>(text).simple();
    }
    const bytes = rows[0]?.bytes;
    if (bytes === undefined) throw new Error(`the ${guc} query returned no rows`);
    return Math.max(0, Number(bytes));
  }

  /** The current neon.file_cache_size_limit in bytes. */
  async currentSize(): Promise<number> {
    try {
      return await this.#sizeSetting("neon.file_cache_size_limit");
    } catch (err) {
      throw new Error("failed to query pg for file cache size", { cause: err });
    }
  }

  /** Sets the size to `bytes` (capped by the maximum, rounded down to MiB) and reloads. */
  async setSize(bytes: number): Promise<SetSizeResult> {
    let maxBytes: number;
    try {
      maxBytes = await this.#sizeSetting("neon.max_file_cache_size");
    } catch (err) {
      throw new Error("failed to query pg for max file cache size", { cause: err });
    }
    const mb = Math.floor(Math.min(bytes, maxBytes) / MiB);
    try {
      await this.#sql.unsafe(`ALTER SYSTEM SET neon.file_cache_size_limit = ${mb}`).simple();
    } catch (err) {
      throw new Error("failed to change file cache size limit", { cause: err });
    }
    try {
      await this.#sql.unsafe("SELECT pg_reload_conf()").simple();
    } catch (err) {
      throw new Error("failed to reload config", { cause: err });
    }
    return { bytes: mb * MiB, capped: bytes > maxBytes, maxBytes };
  }

  /** Closes the connection at once. */
  async close(): Promise<void> {
    await this.#sql.end({ timeout: 0 }).catch(() => {});
  }
}
