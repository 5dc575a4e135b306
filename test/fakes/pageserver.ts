// A STRICT fake pageserver: the libpq page service as compute_ctl uses it, and nothing else.
//   startup   basebackup connections: client_encoding=UTF8, user, options=-c neon.compute_mode=<m>,
//             application_name=compute_ctl (in that order); lease connections: client_encoding, user.
//             With a token: cleartext password = token.
//   basebackup, extended protocol only (tokio-postgres copy_out):
//             Parse(name, "basebackup <tenant> <timeline>[ <X/Y>] --gzip[ --replica]") -> '1'
//             Describe(S, name) -> 't'(0) 'n';  Sync -> 'Z'
//             Bind("" <- name, no params, result formats [1]) -> '2'
//             Execute("", 0) -> 'H'(0,0) 'd'... 'c' 'C'(SELECT 1);  Sync -> 'Z'
//             then optionally Close(S, name) -> '3', Sync -> 'Z'; Terminate.
//   lease:    Query "lease lsn <tenant_shard_id> <timeline> <X/Y> " (trailing space)
//             -> 'T'(valid_until) 'D'(millis | NULL) 'C'(SELECT 1) 'Z'
// `--replica` must be present exactly when compute_mode is not primary; LSN 0/0 is never sent.
// Standalone: `bun test/fakes/pageserver.ts '<json config>'` prints {"port":N} and then one JSON
// line per request and per rejection on stdout.
import { be, type FakeConn, type Frontend, showFrontend, startPgServer } from "./pgwire.ts";

export interface PageserverFaults {
  /** Close the first N connections at once, before any reply. */
  refuseConnections?: number;
  /** Send an ErrorResponse after the CopyData instead of CopyDone (as a failing basebackup). */
  errorAfterData?: boolean;
  /** Send only the first half of the gzip bytes, then finish normally. */
  truncateGzip?: boolean;
  /** Wait this long before the auth reply, before CopyOutResponse and before a lease reply. */
  slowMs?: number;
  /** CopyData payload size; default 8192 (the pageserver's BufWriter). */
  chunkSize?: number;
  /** Pause this long before each CopyData after the first: a slow basebackup stream. */
  chunkDelayMs?: number;
  /**
   * After CopyOutResponse, write the CopyData stream's wire bytes one at a time, this many ms
   * apart (1000: a pageserver sending 1 byte a second). Stops when the client hangs up.
   */
  trickleMs?: number;
  /** Accept connections and read the StartupMessage, then never answer. */
  silent?: boolean;
  /** Reset the connection (RST, no goodbye) after this many bytes of basebackup payload. */
  resetAfterBytes?: number;
  /**
   * Well-formed messages of the wrong type: "copy-in" answers Execute with CopyInResponse instead
   * of CopyOutResponse; "data-row" puts a DataRow among the CopyData; "notices" sends an endless
   * stream of NoticeResponses (100 ms apart) instead of the data.
   */
  wrongMessage?: "copy-in" | "data-row" | "notices";
}

export interface FakePageserverOptions {
  /** The gzip'd tar to serve, whole or streamed. */
  basebackup: () => Uint8Array | AsyncIterable<Uint8Array>;
  token?: string | null;
  tenantId: string;
  timelineId: string;
  /** The tenant_shard_id a lease must name; default the bare tenant id (unsharded). */
  tenantShardId?: string;
  /** valid_until in unix ms, or null when not granted. Default: now + 10 minutes. */
  lease?: (lsn: string) => number | null;
  faults?: PageserverFaults;
  /** Standalone mode: see every request and rejection as it happens. */
  onRequest?: (r: PageserverRequest) => void;
  onReject?: (why: string) => void;
  port?: number;
}

export interface PageserverRequest {
  at: number;
  startup: Record<string, string>;
  command: string;
}

export interface FakePageserver {
  port: number;
  /** A libpq URL for the shard's `libpq_url`. */
  url: string;
  requests: PageserverRequest[];
  rejections: string[];
  stop(): Promise<void>;
}

const LSN_RE = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
const MODES = new Set(["primary", "replica", "static"]);

type Profile = { kind: "basebackup"; mode: string } | { kind: "lease" };

function classifyStartup(params: Record<string, string>, keys: string[]): Profile | string {
  const order = keys.join(",");
  if (params.client_encoding !== "UTF8") {
    return `client_encoding must be UTF8, got ${params.client_encoding}`;
  }
  if (!params.user) return "startup without user";
  if (order === "client_encoding,user,options,application_name") {
    const m = /^-c neon\.compute_mode=(\S+)$/.exec(params.options ?? "");
    if (!m || !MODES.has(m[1] as string)) {
      return `options must be "-c neon.compute_mode=<primary|replica|static>", got ${JSON.stringify(params.options)}`;
    }
    if (params.application_name !== "compute_ctl") {
      return `application_name must be compute_ctl, got ${JSON.stringify(params.application_name)}`;
    }
    return { kind: "basebackup", mode: m[1] as string };
  }
  if (order === "client_encoding,user") return { kind: "lease" };
  return `unexpected startup parameters [${order}] (basebackup: client_encoding,user,options,application_name; lease: client_encoding,user)`;
}

async function* rechunk(
  src: Uint8Array | AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  const it: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
    src instanceof Uint8Array ? [src] : src;
  for await (const chunk of it) {
    for (let o = 0; o < chunk.length; o += size) yield chunk.subarray(o, o + size);
  }
}

async function collect(src: Uint8Array | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  if (src instanceof Uint8Array) return src;
  const parts: Uint8Array[] = [];
  for await (const c of src) parts.push(c);
  return Buffer.concat(parts);
}

export async function startFakePageserver(opts: FakePageserverOptions): Promise<FakePageserver> {
  const faults = opts.faults ?? {};
  const chunkSize = faults.chunkSize ?? 8192;
  const requests: PageserverRequest[] = [];
  const expectedTsid = opts.tenantShardId ?? opts.tenantId;
  const lease = opts.lease ?? (() => Date.now() + 600_000);
  const profiles = new WeakMap<FakeConn, Profile>();
  const record = (conn: FakeConn, command: string) => {
    const r = { at: Date.now(), startup: { ...conn.startup }, command };
    requests.push(r);
    opts.onRequest?.(r);
  };

  const checkBasebackup = (text: string, profile: Profile): string | null => {
    if (profile.kind !== "basebackup") {
      return "basebackup on a connection without options/application_name";
    }
    const m = /^basebackup (\S+) (\S+)(?: (\S+))? --gzip( --replica)?$/.exec(text);
    if (!m) {
      return `malformed basebackup command ${JSON.stringify(text)} (expected "basebackup <tenant> <timeline>[ <lsn>] --gzip[ --replica]")`;
    }
    const [, tenant, timeline, lsn, replica] = m;
    if (tenant !== opts.tenantId) return `unknown tenant ${tenant}`;
    if (timeline !== opts.timelineId) return `unknown timeline ${timeline}`;
    if (lsn !== undefined && (!LSN_RE.test(lsn) || lsn === "0/0")) {
      return `bad basebackup LSN ${lsn}`;
    }
    if ((profile.mode !== "primary") !== (replica !== undefined)) {
      return `--replica ${replica ? "given" : "missing"} for compute_mode=${profile.mode}`;
    }
    return null;
  };

  const streamBasebackup = async (conn: FakeConn): Promise<"done" | "hung up"> => {
    if (faults.slowMs) await Bun.sleep(faults.slowMs);
    if (faults.wrongMessage === "copy-in") {
      await conn.send(be.copyInResponse());
      return "done";
    }
    await conn.send(be.copyOutResponse());
    if (faults.wrongMessage === "notices") {
      for (let i = 0; !conn.closed; i++) {
        await conn.send(be.noticeResponse(`still preparing the basebackup (${i})`)).catch(() => {});
        await Bun.sleep(100);
      }
      return "hung up";
    }
    let src = opts.basebackup();
    if (faults.truncateGzip) {
      const all = await collect(src);
      src = all.subarray(0, Math.floor(all.length / 2));
    }
    let first = true;
    let sent = 0;
    for await (const chunk of rechunk(src, chunkSize)) {
      if (!first && faults.chunkDelayMs) await Bun.sleep(faults.chunkDelayMs);
      if (faults.resetAfterBytes !== undefined && sent + chunk.length > faults.resetAfterBytes) {
        await conn.send(be.copyData(chunk.subarray(0, faults.resetAfterBytes - sent)));
        await Bun.sleep(50);
        conn.abort();
        return "hung up";
      }
      const message = be.copyData(chunk);
      if (faults.trickleMs) {
        for (let i = 0; i < message.length; i++) {
          if (conn.closed) return "hung up";
          await conn.send(message.subarray(i, i + 1)).catch(() => {});
          await Bun.sleep(faults.trickleMs);
        }
      } else await conn.send(message);
      if (first && faults.wrongMessage === "data-row") {
        await conn.send(be.dataRow(["not copy data"]));
      }
      first = false;
      sent += chunk.length;
    }
    if (faults.errorAfterData) {
      await conn.send(be.errorResponse("basebackup failed: injected error after data"));
      return "done";
    }
    await conn.send(be.copyDone(), be.commandComplete("SELECT 1"));
    return "done";
  };

  /** Parse .. Sync, Bind, Execute, Sync of one copy_out. */
  const extended = async (conn: FakeConn, parse: Extract<Frontend, { type: "Parse" }>) => {
    const profile = profiles.get(conn) as Profile;
    if (parse.paramTypes.length) await conn.reject("Parse with parameter types");
    const complaint = checkBasebackup(parse.query, profile);
    if (complaint) await conn.reject(complaint);
    const name = parse.name;
    await conn.send(be.parseComplete());
    const describe = await conn.expect("Describe", (d) =>
      d.kind === "S" && d.name === name
        ? null
        : `unexpected ${showFrontend(d)} (expected Describe S ${JSON.stringify(name)})`,
    );
    if (!describe) return;
    await conn.send(be.parameterDescription([]), be.noData());
    if (!(await conn.expect("Sync"))) return;
    await conn.send(be.readyForQuery());
    const bind = await conn.expect("Bind", (b) =>
      b.portal === "" &&
      b.statement === name &&
      b.paramFormats.length === 0 &&
      b.params.length === 0 &&
      b.resultFormats.length === 1 &&
      b.resultFormats[0] === 1
        ? null
        : `unexpected ${showFrontend(b)} (expected Bind portal="" stmt=${JSON.stringify(name)}, no params, resultFormats=[1])`,
    );
    if (!bind) return;
    await conn.send(be.bindComplete());
    const exec = await conn.expect("Execute", (e) =>
      e.portal === "" && e.maxRows === 0 ? null : `unexpected ${showFrontend(e)}`,
    );
    if (!exec) return;
    record(conn, parse.query);
    if ((await streamBasebackup(conn)) === "hung up") return;
    if (!(await conn.expect("Sync"))) return;
    await conn.send(be.readyForQuery());
    return name;
  };

  const leaseQuery = async (conn: FakeConn, sql: string) => {
    const profile = profiles.get(conn) as Profile;
    if (profile.kind !== "lease") {
      await conn.reject("lease lsn on a connection with options/application_name");
    }
    const m = /^lease lsn (\S+) (\S+) (\S+) $/.exec(sql);
    if (!m) {
      await conn.reject(
        `malformed lease command ${JSON.stringify(sql)} (expected "lease lsn <tenant_shard_id> <timeline> <lsn> ")`,
      );
    }
    const [, tsid, timeline, lsn] = m as RegExpExecArray;
    if (tsid !== expectedTsid) await conn.reject(`unexpected tenant_shard_id ${tsid}`);
    if (timeline !== opts.timelineId) await conn.reject(`unknown timeline ${timeline}`);
    if (!LSN_RE.test(lsn as string)) await conn.reject(`bad lease LSN ${lsn}`);
    record(conn, sql);
    if (faults.slowMs) await Bun.sleep(faults.slowMs);
    const until = lease(lsn as string);
    await conn.send(
      be.rowDescription(["valid_until"]),
      be.dataRow([until === null ? null : String(until)]),
      be.commandComplete("SELECT 1"),
      be.readyForQuery(),
    );
  };

  const refuse = faults.refuseConnections ?? 0;
  const server = await startPgServer({
    name: "pageserver",
    password: opts.token ?? null,
    port: opts.port,
    onReject: opts.onReject,
    refuse: (n) => n < refuse,
    startupDelayMs: faults.slowMs,
    silent: () => faults.silent === true,
    checkStartup: (params, keys) => {
      const p = classifyStartup(params, keys);
      return typeof p === "string" ? p : null;
    },
    session: async (conn) => {
      profiles.set(conn, classifyStartup(conn.startup, conn.startupKeys) as Profile);
      const prepared = new Set<string>();
      for (;;) {
        const m = await conn.next();
        if (m === null || m.type === "Terminate") return;
        switch (m.type) {
          case "Parse": {
            const name = await extended(conn, m);
            if (name === undefined) return;
            prepared.add(name);
            break;
          }
          case "Close":
            // tokio-postgres closes the statement once the copy has started.
            if (m.kind !== "S" || !prepared.delete(m.name)) {
              await conn.reject(`unexpected ${showFrontend(m)}`);
            }
            await conn.send(be.closeComplete());
            break;
          case "Sync":
            await conn.send(be.readyForQuery());
            break;
          case "Query":
            if (/^\s*basebackup\b/i.test(m.sql)) {
              await conn.reject("basebackup must use the extended protocol (copy_out)");
            }
            await leaseQuery(conn, m.sql);
            break;
          default:
            await conn.reject(`unexpected ${showFrontend(m)}`);
        }
      }
    },
  });
  return {
    port: server.port,
    url: `postgresql://no_user@127.0.0.1:${server.port}`,
    requests,
    rejections: server.rejections,
    stop: () => server.stop(),
  };
}

/** Standalone config (argv[2], JSON). */
interface StandaloneConfig {
  tenantId: string;
  timelineId: string;
  token?: string | null;
  /** A .tar.gz served as the basebackup, streamed from disk per request. */
  basebackupPath: string;
  tenantShardId?: string;
  /** Lease answer: valid for this many ms, or null (never granted). Default 10 minutes. */
  leaseValidMs?: number | null;
  faults?: PageserverFaults;
  port?: number;
}

if (import.meta.main) {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as StandaloneConfig;
  const validMs = cfg.leaseValidMs === undefined ? 600_000 : cfg.leaseValidMs;
  const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const ps = await startFakePageserver({
    tenantId: cfg.tenantId,
    timelineId: cfg.timelineId,
    token: cfg.token ?? null,
    tenantShardId: cfg.tenantShardId,
    faults: cfg.faults,
    port: cfg.port,
    basebackup: () => Bun.file(cfg.basebackupPath).stream() as AsyncIterable<Uint8Array>,
    lease: () => (validMs === null ? null : Date.now() + validMs),
    onRequest: (request) => out({ request }),
    onReject: (rejection) => out({ rejection }),
  });
  out({ port: ps.port });
  const stop = () => void ps.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
