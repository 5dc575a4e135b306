// LSN leases for static computes (lsn_lease.rs): keep the pageservers from garbage-collecting the
// history below a Static(lsn) compute. Every pageserver of every shard is asked, in the protocol
// the conninfo prefers:
// - libpq: the simple query `lease lsn <tenant_shard_id> <timeline> <X/Y> ` (trailing space, as
//   the reference sends it) with the storage token as password and no application_name or
//   options; the answer is valid_until in unix milliseconds, or NULL when not granted;
// - gRPC: `LeaseLsn{lsn}` with the shard's own id in `neon-shard-id`; the answer is the expiry,
//   or FAILED_PRECONDITION when not granted.
// Not granted means the LSN is already behind the GC cutoff: that is permanent, so the loop logs
// a warning and ends while the compute keeps running.
import { shardIndex } from "../api/spec.ts";
import { formatOneLine } from "../errors.ts";
import { type Logger, log as rootLog } from "../log.ts";
import { leaseLsnGrpc } from "./page-api/client.ts";
import { PqConnection, parseConnstring } from "./pq.ts";

export interface LeaseShard {
  /** Display form of TenantShardId (see tenantShardId()). */
  tenantShardId: string;
  /** ShardIndex display, "NNCC" (the gRPC `neon-shard-id`). */
  shardId: string;
  /** How to reach the shard's pageservers: `libpq_url`s or `grpc_url`s. */
  protocol: "libpq" | "grpc";
  /** URLs of the shard's pageservers, in `protocol`. */
  urls: string[];
}

export interface LsnLeaseOptions {
  /** Every shard; a function is re-read before each attempt (the conninfo can change). */
  pageservers: LeaseShard[] | (() => LeaseShard[]);
  timelineId: string;
  /** The static LSN, "X/Y". */
  lsn: string;
  /** The tenant (the gRPC `neon-tenant-id`). */
  tenantId: string;
  token: string | null | (() => string | null);
  /** Called once when a lease is refused (NULL); the loop has ended by then. */
  onPermanentFailure?: (err: Error) => void;
  /** Wall clock in unix ms (tests pass a fake one). */
  now?: () => number;
  /** Waits `ms` or until `signal` aborts (stop or wake); tests pass a fake one. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /**
   * Per-attempt budget for connect + query on one pageserver. The reference has none (a silent
   * peer would stall renewals forever); this turns a hang into a retried error.
   */
  requestTimeoutMs?: number;
  logger?: Logger;
}

export interface LsnLeaseLoop {
  /** Ends the loop; in-flight requests are aborted. */
  stop(): void;
  /** Cuts the current sleep short (the pageserver conninfo changed). */
  wake(): void;
  /** Resolves when the loop has ended (stop or permanent failure); never rejects. */
  done: Promise<void>;
}

export const PERMANENT_LEASE_ERROR =
  "Permanent error: lease could not be obtained, LSN is behind the GC cutoff";
const RETRY_START_MS = 500;
const RETRY_MAX_MS = 60_000;

/** TenantShardId's Display: `<tenant>` when unsharded (count 0), else `<tenant>-NNCC` in hex. */
export function tenantShardId(tenantId: string, shardNumber: number, shardCount: number): string {
  if (shardCount === 0) return tenantId;
  return `${tenantId}-${shardIndex(shardNumber, shardCount)}`;
}

/** lsn_lease.rs: sleep 60 s less than the validity, but at least half of it. */
export function leaseSleepMs(validMs: number): number {
  const valid = Math.max(0, validMs);
  return Math.max(Math.max(0, valid - 60_000), Math.floor(valid / 2));
}

/** The retry delays: 500 ms ×1.5, capped at 60 s (truncated to whole ms, as `as u64`). */
export function leaseRetryDelays(): () => number {
  let period = RETRY_START_MS;
  return () => {
    const d = Math.floor(period);
    period = Math.min(period * 1.5, RETRY_MAX_MS);
    return d;
  };
}

/** One lease request to one pageserver: valid_until (unix ms) or null when not granted. */
export async function acquireLsnLease(opts: {
  url: string;
  token: string | null;
  tenantShardId: string;
  timelineId: string;
  lsn: string;
  signal?: AbortSignal;
}): Promise<number | null> {
  const cfg = parseConnstring(opts.url);
  const conn = await PqConnection.connect({
    ...cfg,
    password: opts.token ?? cfg.password,
    signal: opts.signal,
  });
  try {
    const res = await conn.simpleQuery(
      `lease lsn ${opts.tenantShardId} ${opts.timelineId} ${opts.lsn} `,
    );
    const row = res.rows[0];
    if (!row) throw new Error("error parsing lsn lease response");
    // As the reference's row.get("valid_until"): a missing column reads as "not granted".
    const i = res.columns.indexOf("valid_until");
    const text = i === -1 ? null : (row[i] ?? null);
    if (text === null) return null;
    if (!/^\d+$/.test(text)) throw new LeaseResponseError(`invalid valid_until ${text}`);
    return Number(text);
  } finally {
    await conn.close();
  }
}

/** An answer that cannot be read: the reference panics on it, which ends its lease thread. */
class LeaseResponseError extends Error {}

export function startLsnLeaseLoop(opts: LsnLeaseOptions): LsnLeaseLoop {
  const logger = opts.logger ?? rootLog.span("lsn_lease_bg_task", { lsn: opts.lsn });
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  const stopCtl = new AbortController();
  let wakeCtl = new AbortController();
  const shards = () =>
    typeof opts.pageservers === "function" ? opts.pageservers() : opts.pageservers;
  const token = () => (typeof opts.token === "function" ? opts.token() : opts.token);

  const pause = async (ms: number) => {
    wakeCtl = new AbortController();
    await sleep(ms, AbortSignal.any([stopCtl.signal, wakeCtl.signal]));
  };

  /** All shards, all pageservers, sequentially; any error fails the whole attempt. */
  const tryAll = async (): Promise<number | null> => {
    const leases: (number | null)[] = [];
    for (const shard of shards()) {
      for (const url of shard.urls) {
        const signal = AbortSignal.any([stopCtl.signal, AbortSignal.timeout(requestTimeoutMs)]);
        leases.push(
          shard.protocol === "grpc"
            ? await leaseLsnGrpc({
                target: {
                  url,
                  tenantId: opts.tenantId,
                  timelineId: opts.timelineId,
                  shardId: shard.shardId,
                  token: token(),
                },
                lsn: opts.lsn,
                signal,
              })
            : await acquireLsnLease({
                url,
                token: token(),
                tenantShardId: shard.tenantShardId,
                timelineId: opts.timelineId,
                lsn: opts.lsn,
                signal,
              }),
        );
      }
    }
    // Option's ordering puts None first: one refusal anywhere is the answer.
    if (leases.some((l) => l === null)) return null;
    return leases.length === 0 ? null : Math.min(...(leases as number[]));
  };

  const run = async (): Promise<void> => {
    while (!stopCtl.signal.aborted) {
      let validUntil: number | null = null;
      const nextDelay = leaseRetryDelays();
      for (let attempt = 0; !stopCtl.signal.aborted; attempt++) {
        try {
          const r = await tryAll();
          if (r === null) {
            const err = new Error(PERMANENT_LEASE_ERROR);
            logger.warn(`Exited with error: ${err.message}`);
            opts.onPermanentFailure?.(err);
            return;
          }
          validUntil = r;
          break;
        } catch (err) {
          if (stopCtl.signal.aborted) return;
          if (err instanceof LeaseResponseError) {
            logger.warn(`Exited with error: ${err.message}`);
            opts.onPermanentFailure?.(err);
            return;
          }
          logger.warn(`Failed to acquire lsn lease: ${formatOneLine(err)} (attempt ${attempt})`);
          await pause(nextDelay());
        }
      }
      if (validUntil === null) return;
      const ms = leaseSleepMs(validUntil - now());
      logger.info(`Request succeeded, sleeping for ${Math.floor(ms / 1000)} seconds`);
      await pause(ms);
    }
  };

  const done = run().catch((err: unknown) => {
    logger.warn(`Exited with error: ${formatOneLine(err)}`);
  });
  return {
    stop: () => stopCtl.abort(new Error("lease loop stopped")),
    wake: () => wakeCtl.abort(new Error("woken")),
    done,
  };
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
