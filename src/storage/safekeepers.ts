// The safekeeper fast path (compute.rs check_safekeepers_synced + sync_sk.rs): ask every
// safekeeper for TIMELINE_STATUS; when a quorum answers and they all agree that
// commit_lsn == flush_lsn, that LSN is where the timeline ends and `--sync-safekeepers` can be
// skipped. Any failure means "not known to be synced" (null): the caller runs the full sync.
import { formatLsn, type Lsn, tryParseLsn } from "../api/lsn.ts";
import { formatOneLine } from "../errors.ts";
import { type Logger, log as rootLog } from "../log.ts";
import { PqConnection, parseConnstring } from "./pq.ts";

export type TimelineStatus = { kind: "ok"; flush: Lsn; commit: Lsn } | { kind: "not_found" };

export interface CheckSafekeepersOptions {
  /** `host:port` of each safekeeper (the spec's safekeeper_connstrings). */
  safekeepers: string[];
  tenantId: string;
  timelineId: string;
  token: string | null;
  /** Budget per safekeeper for connect + query; the reference's is 100 ms. */
  timeoutMs?: number;
  logger?: Logger;
}

/** One TIMELINE_STATUS round trip, as sync_sk.rs ping_safekeeper. */
export async function pingSafekeeper(
  addr: string,
  opts: { tenantId: string; timelineId: string; token: string | null; signal?: AbortSignal },
  logger: Logger = rootLog,
): Promise<TimelineStatus> {
  const cfg = parseConnstring(`postgresql://no_user@${addr}`);
  logger.info(`connecting to ${addr}`);
  const conn = await PqConnection.connect({
    host: cfg.host,
    port: cfg.port,
    user: cfg.user,
    database: cfg.database,
    // The reference sets options and password on top of the URL's config.
    options: `-c timeline_id=${opts.timelineId} tenant_id=${opts.tenantId}`,
    password: opts.token ?? cfg.password,
    applicationName: cfg.applicationName,
    signal: opts.signal,
  });
  try {
    logger.info(`querying ${addr}`);
    const res = await conn.simpleQuery("TIMELINE_STATUS");
    logger.info(`done with ${addr}`);
    const row = res.rows[0];
    if (!row) return { kind: "not_found" };
    const get = (name: string): Lsn => {
      const i = res.columns.indexOf(name);
      const text = i === -1 ? null : row[i];
      if (text == null) throw new Error(`TIMELINE_STATUS from ${addr} has no ${name}`);
      const lsn = tryParseLsn(text);
      if (lsn === null) throw new Error(`TIMELINE_STATUS from ${addr}: invalid ${name} ${text}`);
      return lsn;
    };
    return { kind: "ok", flush: get("flush_lsn"), commit: get("commit_lsn") };
  } finally {
    await conn.close();
  }
}

/** sync_sk.rs check_if_synced: the common LSN when all agree and commit == flush, else null. */
export function checkIfSynced(responses: TimelineStatus[], logger: Logger = rootLog): Lsn | null {
  const ok = responses.filter((r) => r.kind === "ok");
  if (ok.length < responses.length) {
    logger.info(
      `not synced. Only ${ok.length} out of ${responses.length} know about this timeline`,
    );
    return null;
  }
  const first = ok[0];
  if (!first) return null;
  const commit = ok.map((r) => r.commit);
  const flush = ok.map((r) => r.flush);
  // Math.min/max do not take bigints.
  // biome-ignore lint/complexity/useMathMinMax: bigint
  const min = (a: Lsn[]) => a.reduce((x, y) => (y < x ? y : x));
  // biome-ignore lint/complexity/useMathMinMax: bigint
  const max = (a: Lsn[]) => a.reduce((x, y) => (y > x ? y : x));
  if (min(commit) !== max(commit)) {
    logger.info(`not synced. ${formatLsn(min(commit))} ${formatLsn(max(commit))}`);
    return null;
  }
  if (min(flush) !== max(flush)) {
    logger.info(`not synced. ${formatLsn(min(flush))} ${formatLsn(max(flush))}`);
    return null;
  }
  if (first.commit !== first.flush) {
    logger.info(`not synced. ${formatLsn(first.commit)} ${formatLsn(first.flush)}`);
    return null;
  }
  return first.commit;
}

/**
 * The fast path. Resolves with the synced LSN ("X/Y") or null; never rejects for peer failures.
 * Collection stops as soon as a quorum (n/2+1) of answers or of failures is in; the pings still
 * outstanding are then aborted.
 */
export async function checkSafekeepersSynced(
  opts: CheckSafekeepersOptions,
): Promise<string | null> {
  const logger = opts.logger ?? rootLog;
  const timeoutMs = opts.timeoutMs ?? 100;
  const quorum = Math.floor(opts.safekeepers.length / 2) + 1;
  const controllers: AbortController[] = [];
  type Outcome = { ok: true; status: TimelineStatus } | { ok: false; error: string };

  const pings = opts.safekeepers.map((addr): Promise<Outcome> => {
    const ac = new AbortController();
    controllers.push(ac);
    const timer = setTimeout(
      () => ac.abort(new Error(`deadline of ${timeoutMs} ms has elapsed`)),
      timeoutMs,
    );
    return pingSafekeeper(addr, { ...opts, signal: ac.signal }, logger)
      .then(
        (status): Outcome => ({ ok: true, status }),
        (err: unknown): Outcome => ({
          ok: false,
          error: `${addr}: ${ac.signal.aborted ? `timed out after ${timeoutMs} ms` : formatOneLine(err)}`,
        }),
      )
      .finally(() => clearTimeout(timer));
  });

  const responses: TimelineStatus[] = [];
  const errors: string[] = [];
  await new Promise<void>((resolve) => {
    let pending = pings.length;
    if (pending === 0) resolve();
    for (const p of pings) {
      void p.then((o) => {
        if (o.ok) responses.push(o.status);
        else errors.push(o.error);
        pending--;
        if (responses.length >= quorum || errors.length >= quorum || pending === 0) resolve();
      });
    }
  });
  for (const ac of controllers) ac.abort(new Error("safekeeper check finished"));

  if (responses.length < quorum) {
    logger.error("failed sync safekeepers check", {
      responses: responses.length,
      quorum,
      errors: errors.join("; "),
    });
    return null;
  }
  const lsn = checkIfSynced(responses.slice(0, quorum), logger);
  return lsn === null ? null : formatLsn(lsn);
}
