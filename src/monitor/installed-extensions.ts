// Installed-extensions statistics: which extensions, at which versions, are installed in how many
// databases. Collected once after a primary starts and then periodically by a background task;
// published as the `compute_installed_extensions` gauge and as a `[NEON_EXT_STAT]` log line that
// Neon's log pipeline parses. Behaviour follows the reference's installed_extensions.rs and the
// extension-stats task of compute.rs.
import { formatOneLine } from "../errors.ts";
import { log } from "../log.ts";
import type { Metrics } from "../metrics/registry.ts";
import { localClient } from "../postgres/client.ts";

const APPLICATION_NAME = "compute_ctl:get_installed_extensions";

/** The CLI's default --installed-extensions-collection-interval, and the spec's "default". */
export const DEFAULT_COLLECTION_INTERVAL_SECONDS = 3600;

/** One entry of the reference's `InstalledExtensions` JSON (field names and order as it writes). */
export interface InstalledExtension {
  extname: string;
  version: string;
  n_databases: number;
  /** "1" when the owner is the bootstrap superuser (oid 10), else "0". */
  owned_by_superuser: string;
}

export interface InstalledExtensions {
  extensions: InstalledExtension[];
}

// At most 500 databases, to bound the load; datconnlimit = -2 marks a database left invalid by
// an interrupted DROP DATABASE, which refuses connections.
const LIST_DATABASES = `SELECT datname FROM pg_catalog.pg_database
WHERE datallowconn
  AND datconnlimit OPERATOR(pg_catalog.<>) (OPERATOR(pg_catalog.-) 2::pg_catalog.int4)
LIMIT 500`;

const LIST_EXTENSIONS =
  "SELECT extname, extversion, extowner::pg_catalog.int4 AS extowner FROM pg_catalog.pg_extension";

export interface CollectOptions {
  /**
   * Awaited before each database is visited. The collection is background work that opens one
   * connection per database; the compute passes a wait for any spec apply in progress to end, so
   * a reconfiguration that someone is waiting for does not share the CPU and Postgres's
   * connection slots with it.
   */
  yieldTo?: () => Promise<unknown>;
}

/**
 * Connects to every database that takes connections (up to 500), counts the databases per
 * (extension, version, owned by superuser), sets the gauge for each, and logs
 * `[NEON_EXT_STAT] {json}`. Stale series are never removed, as in the reference. Rejects on
 * any connection or query failure (nothing is published then).
 */
export async function collectInstalledExtensions(
  connstr: URL,
  metrics: Metrics,
  opts: CollectOptions = {},
): Promise<InstalledExtensions> {
  await opts.yieldTo?.();
  const databases = await withClient(connstr, undefined, async (sql) => {
    const rows = await sql.unsafe(LIST_DATABASES);
    return rows.map((r) => String(r.datname));
  });

  const byKey = new Map<string, InstalledExtension>();
  for (const database of databases) {
    await opts.yieldTo?.();
    let rows: Record<string, unknown>[];
    try {
      rows = await withClient(connstr, database, (sql) => sql.unsafe(LIST_EXTENSIONS));
    } catch (err) {
      // Differs: a database dropped between the listing and the connection is skipped instead
      // of failing the whole collection.
      if ((err as { code?: string }).code === "3D000") {
        log.info(`database ${database} disappeared while collecting installed extensions`);
        continue;
      }
      throw new Error(`could not list extensions in database ${database}`, { cause: err });
    }
    for (const r of rows) {
      const extname = String(r.extname);
      const version = String(r.extversion);
      const owned = Number(r.extowner) === 10 ? "1" : "0";
      const key = JSON.stringify([extname, version, owned]);
      const seen = byKey.get(key);
      if (seen) seen.n_databases += 1;
      else byKey.set(key, { extname, version, n_databases: 1, owned_by_superuser: owned });
    }
  }

  const extensions = [...byKey.values()];
  for (const e of extensions) {
    metrics.installedExtensions.set(
      { extension_name: e.extname, version: e.version, owned_by_superuser: e.owned_by_superuser },
      e.n_databases,
    );
  }
  const result = { extensions };
  log.info(`[NEON_EXT_STAT] ${JSON.stringify(result)}`);
  return result;
}

async function withClient<T>(
  connstr: URL,
  database: string | undefined,
  fn: (sql: ReturnType<typeof localClient>) => Promise<T>,
): Promise<T> {
  const sql = localClient(connstr, {
    applicationName: APPLICATION_NAME,
    ...(database === undefined ? {} : { database }),
  });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * collectInstalledExtensions for fire-and-forget use (the first collection after a primary
 * starts, the periodic task): a failure is logged, never thrown.
 */
export async function reportInstalledExtensions(
  connstr: URL,
  metrics: Metrics,
  opts: CollectOptions = {},
): Promise<void> {
  try {
    await collectInstalledExtensions(connstr, metrics, opts);
  } catch (err) {
    log.error(`could not get installed extensions: ${formatOneLine(err)}`);
  }
}

/**
 * The collection interval a spec asks for, from its `suspend_timeout_seconds`: -1 (never
 * suspend) and 0 (default) mean 3600 s, anything else is taken as is.
 */
export function collectionIntervalFromSpec(suspendTimeoutSeconds: number): number {
  // Differs: other negative values are not meaningful; the reference casts them to a huge u64
  // (no collection ever again). They get the default here.
  if (suspendTimeoutSeconds <= 0) return DEFAULT_COLLECTION_INTERVAL_SECONDS;
  return suspendTimeoutSeconds;
}

/** The longest delay setTimeout takes as given; longer sleeps are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Sleeps `ms`, resolving early when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const due = Date.now() + ms;
    let timer: Timer | undefined;
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", finish);
      resolve();
    };
    const arm = () => {
      const left = due - Date.now();
      if (left <= 0) return finish();
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    signal.addEventListener("abort", finish, { once: true });
    arm();
  });
}

export interface InstalledExtensionsTaskOptions {
  connstr: URL;
  metrics: Metrics;
  /**
   * The shared collection interval in seconds: the CLI's
   * --installed-extensions-collection-interval until a spec sets it (collectionIntervalFromSpec,
   * in apply_config and reconfigure). Read at spawn and after each collection.
   */
  intervalSeconds: () => number;
  /** Passed to each collection (see CollectOptions). */
  yieldTo?: () => Promise<unknown>;
  /** Injection points for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  collect?: () => Promise<unknown>;
}

export interface InstalledExtensionsTask {
  stop(): void;
  /**
   * Stores a new shared interval (seconds), as the reference's atomic store. It takes effect
   * after the sleep in progress and its collection, and only if it lengthens the interval.
   */
  bumpInterval(seconds: number): void;
  /** Resolves once the loop has ended after stop(). */
  done: Promise<void>;
}

/**
 * The periodic collection. It sleeps FIRST (the first collection is the one at start-up), for
 * 2× the shared interval; after each collection the sleep becomes max(sleep, 2× the shared
 * interval then), so it never shortens.
 */
export function startInstalledExtensionsTask(
  opts: InstalledExtensionsTaskOptions,
): InstalledExtensionsTask {
  const stopper = new AbortController();
  const sleep = opts.sleep ?? abortableSleep;
  const collect =
    opts.collect ??
    (() => reportInstalledExtensions(opts.connstr, opts.metrics, { yieldTo: opts.yieldTo }));
  let stored: number | null = null;
  const shared = () => stored ?? opts.intervalSeconds();

  let interval = 2 * shared();
  log.info(
    `[NEON_EXT_SPAWN] Spawning background installed extensions worker with Timeout: ${interval}`,
  );

  const run = async () => {
    while (!stopper.signal.aborted) {
      log.info(`[NEON_EXT_INT_SLEEP]: Interval: ${interval}`);
      await sleep(interval * 1000, stopper.signal);
      if (stopper.signal.aborted) break;
      try {
        await collect();
      } catch (err) {
        log.error(`could not get installed extensions: ${formatOneLine(err)}`);
      }
      interval = Math.max(interval, 2 * shared());
    }
  };

  const done = run().catch((err) => {
    log.error(`installed extensions worker failed: ${formatOneLine(err)}`);
  });

  return {
    stop: () => stopper.abort(),
    bumpInterval: (seconds) => {
      stored = seconds;
    },
    done,
  };
}
