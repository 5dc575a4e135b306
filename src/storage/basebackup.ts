// The basebackup: a gzip tar from shard 0's pageserver, unpacked into PGDATA, with the
// reference's retry loop around it. Over libpq it is one CopyOut; over gRPC it is the
// GetBaseBackup server stream. Both feed the same streaming extractor.
//
// Each attempt of a source that can be described in data (`job`) runs in a short-lived child
// process, the same executable (basebackup-child.ts); the retries, the deadline, the logs and the
// metrics stay here. The child's CPU burst (gunzip, the optimizing JIT tiers) then leaves nothing
// resident in the long-lived compute_ctl.
//
// Testing knob: NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES=<n> replaces the 10 retries (the
// reference honours it only in its `testing` builds; here it is always read). Each attempt is
// bounded, connect to last byte (10 min, COMPUTE_CTL_TESTING_BASEBACKUP_TIMEOUT_MS): the
// reference waits without end for a pageserver that stalls or trickles.
import { formatOneLine, withContext } from "../errors.ts";
import { log } from "../log.ts";
import { environment, peerKnobs } from "../testing-knobs.ts";
import { isDiskFull } from "../util/fs-write.ts";
import type { ChildLauncher } from "./basebackup-child.ts";
import { openGrpcBasebackup, type PageApiTarget } from "./page-api/client.ts";
import { type ConnectOptions, PqConnection, parseConnstring } from "./pq.ts";

export type ComputeModeName = "primary" | "replica" | "static";

/** What libpqBasebackupSource / grpcBasebackupSource are built from, tagged. */
export type SourceJob =
  | ({ kind: "libpq" } & LibpqSourceOptions)
  | ({ kind: "grpc" } & GrpcSourceOptions);

/** The source a SourceJob describes. */
export function sourceOfJob(job: SourceJob): BasebackupSource {
  return job.kind === "libpq" ? libpqBasebackupSource(job) : grpcBasebackupSource(job);
}

/** One attempt's connection: the CopyOut payload and how to let go of the connection. */
export interface BasebackupSource {
  /** The peer, as errors name it (`host:port` or the gRPC URL). */
  readonly peer?: string;
  /** The source as data, which a basebackup child process rebuilds it from (secrets included). */
  readonly job?: SourceJob;
  /** Aborting `signal` fails the connect or the stream, whichever is under way. */
  connect(signal?: AbortSignal): Promise<{
    connectMicros: number;
    stream: AsyncIterable<Uint8Array>;
    close(): Promise<void>;
  }>;
}

const DEFAULT_RETRIES = 10;
const RETRIES_ENV = "NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES";

/** The retry count: 10, or NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES when set (a u16). */
export function defaultBasebackupRetries(
  env: Record<string, string | undefined> = { [RETRIES_ENV]: environment.basebackupRetries() },
) {
  const raw = env[RETRIES_ENV];
  if (raw === undefined) return DEFAULT_RETRIES;
  // The reference unwraps a u16 parse; a bad value is a configuration error, not a default.
  if (!/^\d+$/.test(raw) || Number(raw) > 0xffff) {
    throw new Error(
      `${RETRIES_ENV} must be an integer from 0 to 65535, got ${JSON.stringify(raw)}`,
    );
  }
  return Number(raw);
}

/** `basebackup <tenant> <timeline>[ <lsn>] --gzip[ --replica]`; an LSN of 0 means "latest". */
export function basebackupCommand(opts: {
  tenantId: string;
  timelineId: string;
  lsn: string;
  mode: ComputeModeName;
}): string {
  let cmd = `basebackup ${opts.tenantId} ${opts.timelineId}`;
  if (!isZeroLsn(opts.lsn)) cmd += ` ${opts.lsn}`;
  cmd += " --gzip";
  if (opts.mode !== "primary") cmd += " --replica";
  return cmd;
}

function isZeroLsn(lsn: string): boolean {
  return /^\s*0+\/0+\s*$/.test(lsn);
}

type Connector = (opts: ConnectOptions) => Promise<{
  connectMicros: number;
  copyOut(sql: string): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}>;

/**
 * The libpq path: connect to shard 0 with the storage token as the password (overriding one in
 * the connstring), application_name `compute_ctl` and `-c neon.compute_mode=<mode>` as the
 * options (replacing the connstring's), then CopyOut of `command`. No TLS, as the reference.
 */
export interface LibpqSourceOptions {
  connstring: string;
  token: string | null;
  mode: ComputeModeName;
  command: string;
}

export function libpqBasebackupSource(
  opts: LibpqSourceOptions,
  connect?: Connector,
): BasebackupSource {
  let peer: string | undefined;
  try {
    const p = parseConnstring(opts.connstring);
    peer = `${p.host}:${p.port}`;
  } catch {
    // connect() reports the malformed connstring
  }
  return {
    peer,
    // A custom connector (tests) cannot cross into another process.
    ...(connect ? {} : { job: { kind: "libpq" as const, ...opts } }),
    async connect(signal) {
      const p = parseConnstring(opts.connstring);
      if (opts.token !== null) log.info("Got storage auth token from spec file");
      else log.info("Storage auth token not set");
      const conn = await (connect ?? ((o) => PqConnection.connect(o)))({
        host: p.host,
        port: p.port,
        user: p.user,
        database: p.database,
        password: opts.token ?? p.password,
        options: `-c neon.compute_mode=${opts.mode}`,
        applicationName: "compute_ctl",
        signal,
      });
      return {
        connectMicros: conn.connectMicros,
        stream: conn.copyOut(opts.command),
        close: () => conn.close(),
      };
    },
  };
}

/**
 * The gRPC path: `GetBaseBackup` on shard 0's `grpc_url` with the tenant, timeline and shard 0
 * in the metadata and the storage token as the Bearer authorization. An attempt ends with the
 * stream's status: it succeeds only on OK after a complete gzip stream.
 */
export interface GrpcSourceOptions {
  target: PageApiTarget;
  lsn: string;
  mode: ComputeModeName;
}

export function grpcBasebackupSource(opts: GrpcSourceOptions): BasebackupSource {
  return {
    peer: opts.target.url,
    job: { kind: "grpc", ...opts },
    connect: (signal) =>
      openGrpcBasebackup({
        target: opts.target,
        lsn: opts.lsn,
        replica: opts.mode !== "primary",
        signal,
      }),
  };
}

export interface BasebackupMetrics {
  /** Compressed bytes of the successful attempt (`basebackup_bytes`). */
  basebackupBytes: number;
  /** Duration of the successful attempt, connect included (`basebackup_ms`). */
  basebackupMs: number;
  /** Connect latency of the successful attempt (`pageserver_connect_micros`). */
  pageserverConnectMicros: number;
  /** Tries made, 1 when the first one succeeded. */
  attempts: number;
}

/**
 * Fetches and unpacks the basebackup, retrying like the reference: `retries` more tries after
 * the first (10, i.e. 11 in all), sleeping 500 ms then ×1.5 each time; a full disk (ENOSPC,
 * EDQUOT) fails at once. PGDATA is not cleaned
 * between tries; a later one extracts over the partial tree. The final error has the context
 * `failed to get basebackup@<lsn>` and the last attempt's error as its cause.
 */
export async function getBasebackup(opts: {
  source: BasebackupSource;
  pgdata: string;
  lsn: string;
  retries?: number;
  initialDelayMs?: number;
  factor?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Bound on one attempt, connect to last byte (default the knob, 10 min). */
  attemptTimeoutMs?: number;
  /** Called at the first byte of each attempt's payload: the pageserver is streaming. */
  onFirstByte?: () => void;
  /**
   * Runs each attempt of a source with a `job` in a child process (see basebackup-child.ts);
   * without it, or for a source without a job, the attempts run in this process.
   */
  child?: ChildLauncher;
}): Promise<BasebackupMetrics> {
  const retries = opts.retries ?? defaultBasebackupRetries();
  const factor = opts.factor ?? 1.5;
  const sleep = opts.sleep ?? ((ms: number) => Bun.sleep(ms));
  let delay = opts.initialDelayMs ?? 500;
  for (let attempt = 0; ; attempt++) {
    try {
      const timeoutMs = opts.attemptTimeoutMs ?? peerKnobs.basebackupTimeoutMs;
      const m =
        opts.child && opts.source.job
          ? await (await import("./basebackup-child.ts")).attemptInChild(opts.child, {
              job: opts.source.job,
              peer: opts.source.peer,
              pgdata: opts.pgdata,
              timeoutMs,
              onFirstByte: opts.onFirstByte,
            })
          : await tryGetBasebackup(opts.source, opts.pgdata, {
              timeoutMs,
              onFirstByte: opts.onFirstByte,
            });
      return { ...m, attempts: attempt + 1 };
    } catch (err) {
      // A full disk stays full: no retry (the reference retries it like a network error).
      if (attempt >= retries || isDiskFull(err)) {
        throw withContext(`failed to get basebackup@${opts.lsn}`, err);
      }
      // Same text and 0-based count as the reference: "(attempt 0/10)" follows the first failure.
      // One line, so the attempts can be grepped and timed (the reference logs a multi-line chain).
      log.warn(`Failed to get basebackup: ${formatOneLine(err)} (attempt ${attempt}/${retries})`);
      await sleep(Math.floor(delay));
      delay *= factor;
    }
  }
}

/** How one attempt is bounded and what it reports on the way. */
export interface AttemptOptions {
  /** The bound the error messages name. */
  timeoutMs: number;
  /** Ends the attempt as timed out; without it, a timer of `timeoutMs` does. */
  deadline?: AbortSignal;
  onFirstByte?: () => void;
  /** The connection is up (its connect latency). */
  onConnected?: (connectMicros: number) => void;
  /** Compressed bytes received so far, after each chunk. */
  onBytes?: (received: number) => void;
}

/** One attempt in this process: connect, stream, extract, with the deadline's error texts. */
export async function tryGetBasebackup(
  source: BasebackupSource,
  pgdata: string,
  opts: AttemptOptions,
): Promise<Omit<BasebackupMetrics, "attempts">> {
  const { timeoutMs } = opts;
  const started = performance.now();
  let timer: Timer | undefined;
  let deadline = opts.deadline;
  if (!deadline) {
    const ctl = new AbortController();
    timer = setTimeout(
      () => ctl.abort(new Error(`deadline of ${timeoutMs} ms has elapsed`)),
      timeoutMs,
    );
    deadline = ctl.signal;
  }
  const received = { bytes: 0 };
  let conn: Awaited<ReturnType<BasebackupSource["connect"]>> | undefined;
  try {
    conn = await source.connect(deadline);
    log.debug("start phase basebackup_connected");
    opts.onConnected?.(conn.connectMicros);
    // Loaded on the first attempt: a compute that extracts in a child never loads it.
    const { extractTarGz } = await import("./untar.ts");
    const r = await extractTarGz(
      marked(conn.stream, received, opts.onFirstByte, opts.onBytes),
      pgdata,
    );
    return {
      basebackupBytes: r.compressedBytes,
      basebackupMs: Math.floor(performance.now() - started),
      pageserverConnectMicros: conn.connectMicros,
    };
  } catch (err) {
    if (!deadline.aborted) throw err;
    throw new Error(timeoutMessage(source.peer, timeoutMs, conn ? received.bytes : null));
  } finally {
    clearTimeout(timer);
    await conn?.close().catch(() => undefined);
  }
}

/** The error of an attempt cut at its deadline; `received` null: not connected yet. */
export function timeoutMessage(
  peer: string | undefined,
  timeoutMs: number,
  received: number | null,
): string {
  const from = peer ? ` from ${peer}` : "";
  return received !== null
    ? `basebackup${from} not complete after ${timeoutMs} ms (${received} bytes of it received)`
    : `no basebackup connection${from} within ${timeoutMs} ms`;
}

/** The payload as is, counted, with debug marks (and `onFirstByte`) at its first and last byte. */
async function* marked(
  stream: AsyncIterable<Uint8Array>,
  received: { bytes: number },
  onFirstByte?: () => void,
  onBytes?: (received: number) => void,
): AsyncGenerator<Uint8Array> {
  let first = true;
  for await (const chunk of stream) {
    received.bytes += chunk.length;
    onBytes?.(received.bytes);
    if (first && chunk.length > 0) {
      first = false;
      log.debug("start phase basebackup_first_byte");
      onFirstByte?.();
    }
    yield chunk;
  }
  log.debug("start phase basebackup_last_byte");
}
