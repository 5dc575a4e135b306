// LFC prewarm and offload: the two state machines, the background runs behind
// POST /lfc/prewarm and /lfc/offload, and the periodic offloader. State changes are synchronous
// assignments; a run is a promise that tests and the lifecycle can await.
import type { Sql } from "postgres";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { formatOneLine, withContext } from "../errors.ts";
import { failpoint } from "../failpoints.ts";
import { type Logger, log as rootLog } from "../log.ts";
import { httpStatusLabel, type Metrics } from "../metrics/registry.ts";
import { maintenanceClient } from "../postgres/client.ts";
import { isPostgresError } from "../postgres/driver.ts";
import { dbErrorLine } from "../postgres/errors.ts";
import { elapsedMs } from "../util/clock.ts";
import { readAllBounded } from "../util/streams.ts";
import { readBody, type StorageTarget, storageFetch, storageTarget } from "./endpoint-storage.ts";
import { type CompressedState, compressLocalCacheState, ZstdError } from "./local-cache.ts";
import { cancelQuery } from "./pg-cancel.ts";
import { type LfcOffloadState, type LfcPrewarmState, periodicOffloadAllowed } from "./state.ts";

export interface LfcManagerOptions {
  /** The local Postgres (the --connstr URL). */
  connstr: URL;
  metrics: Metrics;
  /** The current parsed spec, or null while the compute has none. */
  getSpec: () => ParsedSpec | null;
  /** Bound on each endpoint storage request, body included (default 60 s; the reference has none). */
  fetchTimeoutMs?: number;
  /** Cap on the downloaded state, compressed and unpacked alike (default MAX_STATE_BYTES). */
  maxStateBytes?: number;
  logger?: Logger;
}

export type StartResult = "started" | "already-running";

/** How long a prewarm query gets to end after each cancel request, and how many are sent. */
const CANCEL_GRACE_MS = 1_500;
const CANCEL_ATTEMPTS = 3;

/**
 * The largest LFC state a prewarm takes, compressed or unpacked: Postgres's MaxAllocSize, the
 * most neon.prewarm_local_cache() can be given as one bytea. A larger download or one that
 * unpacks to more is refused as soon as it passes this (the reference holds whatever arrives).
 */
export const MAX_STATE_BYTES = 0x3fff_ffff;

/** The longest delay setTimeout takes as given. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const CANCELLED: LfcPrewarmState = { status: "cancelled" };

/** Postgres's error as its first tokio-postgres line (`db error: ERROR: message`); others as they are. */
function pgError(err: unknown): unknown {
  // No `cause`: the message already says it all, and the chain would repeat it.
  if (isPostgresError(err)) return new Error(dbErrorLine(err));
  return err;
}

function int4(v: unknown): number {
  // The reference reads the columns as i32 and falls back to 0 on any problem.
  return typeof v === "number" && Number.isInteger(v) ? v : 0;
}

function bounded<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: Timer | undefined;
  const t = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** zstd-decompresses as a stream, refusing output past `max` bytes (a bomb costs at most that). */
function zstdDecompressBounded(data: Uint8Array, max: number): Promise<Uint8Array> {
  const stream = new Blob([data])
    .stream()
    .pipeThrough(new DecompressionStream("zstd")) as ReadableStream<Uint8Array>;
  return readAllBounded(
    stream,
    max,
    () => new Error(`LFC state expands to more than ${max} bytes`),
  );
}

function abortedPromise(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}

export class LfcManager {
  private prewarm_: LfcPrewarmState = { status: "not_prewarmed" };
  private offload_: LfcOffloadState = { status: "not_offloaded" };
  /** The running prewarm: its own cancel controller (a fresh one per run) and its end. */
  private prewarmRun: { cancel: AbortController; done: Promise<void> } | null = null;
  private offloadRun: Promise<void> | null = null;
  private readonly shutdown = new AbortController();
  private readonly periodic = new Set<{ stop(): void }>();
  private readonly timeoutMs: number;
  private readonly maxStateBytes: number;
  private readonly log: Logger;

  constructor(private readonly opts: LfcManagerOptions) {
    this.timeoutMs = opts.fetchTimeoutMs ?? 60_000;
    this.maxStateBytes = opts.maxStateBytes ?? MAX_STATE_BYTES;
    this.log = opts.logger ?? rootLog;
  }

  prewarmState(): LfcPrewarmState {
    return this.prewarm_;
  }

  offloadState(): LfcOffloadState {
    return this.offload_;
  }

  /**
   * Starts a prewarm from the own endpoint's state or `fromEndpoint`'s, unless one is running.
   * Counts `compute_ctl_lfc_prewarms_total` for every accepted start (autoprewarm included).
   */
  prewarm(fromEndpoint?: string): StartResult {
    if (this.prewarm_.status === "prewarming") return "already-running";
    this.prewarm_ = { status: "prewarming" };
    this.opts.metrics.lfcPrewarms.inc();
    const cancel = new AbortController();
    const done = this.runPrewarm(fromEndpoint, cancel.signal)
      .catch((err: unknown): LfcPrewarmState => {
        this.opts.metrics.lfcPrewarmErrors.inc();
        const error = formatOneLine(err);
        this.log.error("could not prewarm LFC", { error });
        return { status: "failed", error };
      })
      .then((state) => {
        this.prewarm_ = state;
        this.prewarmRun = null;
      });
    this.prewarmRun = { cancel, done };
    return "started";
  }

  /** Cancels the running prewarm, if any. Idle, it does nothing (the reference poisons the next run). */
  cancelPrewarm(): void {
    this.prewarmRun?.cancel.abort();
  }

  /** Resolves with the prewarm state once no prewarm runs (at once when none does). */
  async waitPrewarm(timeoutMs = 60_000): Promise<LfcPrewarmState> {
    const run = this.prewarmRun;
    if (run && (await bounded(run.done, timeoutMs)) === "timeout") {
      throw new Error(`timed out after ${timeoutMs} ms waiting for the LFC prewarm to settle`);
    }
    return this.prewarm_;
  }

  /** Starts an offload unless one is running. Not gated by the prewarm state (manual offload). */
  offload(): StartResult {
    if (this.offload_.status === "offloading") return "already-running";
    this.offload_ = { status: "offloading" };
    this.offloadRun = this.runOffloadUpdatingState();
    return "started";
  }

  /** Resolves with the offload state once no offload runs. */
  async waitOffload(timeoutMs = 60_000): Promise<LfcOffloadState> {
    const run = this.offloadRun;
    if (run && (await bounded(run, timeoutMs)) === "timeout") {
      throw new Error(`timed out after ${timeoutMs} ms waiting for the LFC offload to settle`);
    }
    return this.offload_;
  }

  /**
   * Offloads every `intervalSeconds`, the first time one interval after the call. Runs never
   * overlap (a tick waits for its offload); ticks missed meanwhile collapse into one. A tick
   * offloads only when the prewarm state allows it (periodicOffloadAllowed), and skips silently
   * while a manual offload runs. Nothing a tick does can end the loop but stop().
   */
  startPeriodicOffload(intervalSeconds: number): { stop(): void } {
    if (!(intervalSeconds > 0)) throw new Error(`invalid LFC offload interval ${intervalSeconds}`);
    const periodMs = intervalSeconds * 1000;
    let stopped = false;
    let timer: Timer | undefined;
    const started = performance.now();
    let n = 0;
    const handle = {
      stop: () => {
        stopped = true;
        clearTimeout(timer);
        this.periodic.delete(handle);
      },
    };
    const wait = (due: number) => {
      if (stopped || this.shutdown.signal.aborted) return;
      const left = due - performance.now();
      // setTimeout fires at once for delays past 2^31-1 ms; a long interval waits in steps.
      if (left > MAX_TIMER_MS) timer = setTimeout(() => wait(due), MAX_TIMER_MS);
      else timer = setTimeout(tick, Math.max(0, left));
    };
    const schedule = () => {
      // Fixed rate from the start, like a tokio interval; a late tick runs at once.
      const elapsed = performance.now() - started;
      n = Math.max(n + 1, Math.floor(elapsed / periodMs));
      wait(started + n * periodMs);
    };
    const tick = async () => {
      try {
        await this.periodicTick();
      } catch (err) {
        this.log.error("periodic LFC offload failed", { error: formatOneLine(err) });
      }
      schedule();
    };
    this.log.info(`spawning LFC offload worker with ${intervalSeconds}s interval`);
    this.periodic.add(handle);
    schedule();
    return handle;
  }

  private async periodicTick(): Promise<void> {
    if (!periodicOffloadAllowed(this.prewarm_)) {
      this.log.debug(`not offloading the LFC: prewarm is ${this.prewarm_.status}`);
      return;
    }
    if (this.offload() === "started") await this.offloadRun;
  }

  /** For shutdown: stops the periodic offloaders, cancels a prewarm, aborts storage requests. */
  stop(): void {
    for (const p of [...this.periodic]) p.stop();
    this.shutdown.abort();
    this.prewarmRun?.cancel.abort();
  }

  private async runPrewarm(
    fromEndpoint: string | undefined,
    cancel: AbortSignal,
  ): Promise<LfcPrewarmState> {
    const abort = AbortSignal.any([cancel, this.shutdown.signal]);
    const target = storageTarget(this.opts.getSpec(), fromEndpoint);
    if (failpoint("compute-prewarm")) throw new Error("compute-prewarm failpoint");

    this.log.info("requesting LFC state from endpoint storage", { url: target.url });
    let t = performance.now();
    let fetched: Awaited<ReturnType<typeof storageFetch>>;
    try {
      fetched = await storageFetch(target, { method: "GET" }, { timeoutMs: this.timeoutMs, abort });
    } catch (err) {
      if (abort.aborted) return CANCELLED;
      throw withContext("querying endpoint storage", err);
    }
    const { response, signal } = fetched;
    if (response.status === 404) {
      await response.body?.cancel().catch(() => {});
      this.log.info("no LFC state in endpoint storage, skipping prewarm", { url: target.url });
      return { status: "skipped" };
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      throw new Error(`${httpStatusLabel(response.status)} querying endpoint storage`);
    }
    const state_download_time_ms = elapsedMs(t);
    t = performance.now();

    let compressed: Uint8Array;
    try {
      compressed = await readBody(response, signal, this.timeoutMs, this.maxStateBytes);
    } catch (err) {
      if (abort.aborted) return CANCELLED;
      throw withContext("getting request body from endpoint storage", err);
    }
    let state: Uint8Array;
    try {
      state = await zstdDecompressBounded(compressed, this.maxStateBytes);
    } catch (err) {
      throw withContext("decoding LFC state", err);
    }
    if (abort.aborted) return CANCELLED;
    const uncompress_time_ms = elapsedMs(t);
    this.log.info(`downloaded LFC state, uncompressed size ${state.byteLength}`, {
      url: target.url,
    });

    let sql: Sql;
    try {
      sql = await maintenanceClient(this.opts.connstr);
    } catch (err) {
      throw withContext("connecting to postgres", err);
    }
    try {
      // Connecting is not cancellable; a cancel that arrived meanwhile still counts.
      if (abort.aborted) return CANCELLED;
      t = performance.now();
      const loaded = await this.loadCancellable(sql, state, abort);
      if (loaded === "cancelled") return CANCELLED;
      const prewarm_time_ms = elapsedMs(t);

      let row: unknown[] | undefined;
      try {
        [row] = await sql.unsafe("select * from neon.get_prewarm_info()").values();
      } catch (err) {
        throw withContext("querying prewarm info", pgError(err));
      }
      return {
        status: "completed",
        total: int4(row?.[0]),
        prewarmed: int4(row?.[1]),
        skipped: int4(row?.[2]),
        state_download_time_ms,
        uncompress_time_ms,
        prewarm_time_ms,
      };
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
  }

  /**
   * `select neon.prewarm_local_cache($1)`, raced against the cancel signal. On cancel a Postgres
   * cancel request goes to this query's backend, and the query gets a grace period to end.
   */
  private async loadCancellable(
    sql: Sql,
    state: Uint8Array,
    abort: AbortSignal,
  ): Promise<"loaded" | "cancelled"> {
    const bytes = Buffer.from(state.buffer, state.byteOffset, state.byteLength);
    const query = sql.unsafe("select neon.prewarm_local_cache($1)", [bytes]);
    const settled = query.then(
      () => ({ ok: true as const }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    const first = await Promise.race([settled, abortedPromise(abort).then(() => "abort" as const)]);
    if (first === "abort") {
      // A cancel request that lands between two statements is ignored by Postgres, so it is
      // repeated a few times until the query ends.
      for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt++) {
        try {
          await cancelQuery(sql, query);
        } catch (err) {
          throw withContext("cancelling neon.prewarm_local_cache()", err);
        }
        if ((await bounded(settled, CANCEL_GRACE_MS)) !== "timeout") return "cancelled";
      }
      this.log.warn("neon.prewarm_local_cache() still running after its cancel requests");
      return "cancelled";
    }
    if (!first.ok) throw withContext("loading LFC state into postgres", pgError(first.err));
    return "loaded";
  }

  private async runOffloadUpdatingState(): Promise<void> {
    this.opts.metrics.lfcOffloads.inc();
    let state: LfcOffloadState;
    try {
      state = await this.runOffload();
    } catch (err) {
      this.opts.metrics.lfcOffloadErrors.inc();
      const error = formatOneLine(err);
      this.log.error("could not offload LFC", { error });
      state = { status: "failed", error };
    }
    this.offload_ = state;
    this.offloadRun = null;
  }

  private async runOffload(): Promise<LfcOffloadState> {
    const target: StorageTarget = storageTarget(this.opts.getSpec());
    this.log.info("requesting LFC state from Postgres", { url: target.url });

    let t = performance.now();
    let sql: Sql;
    try {
      sql = await maintenanceClient(this.opts.connstr);
    } catch (err) {
      throw withContext("connecting to postgres", err);
    }
    // The state streams from Postgres into the compressor: only the compressed copy is held
    // whole. Compression overlaps the query; its own share is reported as compress_time_ms.
    let result: CompressedState | null;
    try {
      result = await compressLocalCacheState(sql);
    } catch (err) {
      if (err instanceof ZstdError) throw withContext("compressing LFC state", err.cause);
      throw withContext("querying LFC state", pgError(err));
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
    if (result === null) {
      this.log.info("empty LFC state, not exporting", { url: target.url });
      return { status: "skipped" };
    }
    const { compressed } = result;
    const compress_time_ms = Math.round(result.compressMs);
    const state_query_time_ms = Math.max(0, elapsedMs(t) - compress_time_ms);
    t = performance.now();
    this.log.info(`compressed LFC state, size ${compressed.byteLength}`, { url: target.url });

    let response: Response;
    try {
      const fetched = await storageFetch(
        target,
        { method: "PUT", body: compressed },
        { timeoutMs: this.timeoutMs, abort: this.shutdown.signal },
      );
      response = fetched.response;
      // The answer's body says nothing compute_ctl uses; a little of it is read, the rest dropped.
      await readBody(response, fetched.signal, this.timeoutMs, 64 << 10).catch(() => {});
    } catch (err) {
      throw withContext("writing to endpoint storage", err);
    }
    const state_upload_time_ms = elapsedMs(t);
    if (response.status !== 200) {
      throw new Error(`request to endpoint storage failed: ${httpStatusLabel(response.status)}`);
    }
    return { status: "completed", state_query_time_ms, compress_time_ms, state_upload_time_ms };
  }
}
