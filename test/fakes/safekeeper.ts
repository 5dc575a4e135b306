// A STRICT fake safekeeper for compute_ctl's fast path (check_safekeepers_synced):
//   startup   client_encoding=UTF8, user, options="-c timeline_id=<tl> tenant_id=<tenant>" (in that
//             order, nothing else); with a token: cleartext password = token.
//   query     simple Query "TIMELINE_STATUS" -> 'T'(flush_lsn, commit_lsn) ['D'(flush, commit)]
//             'C'(TIMELINE_STATUS) 'Z'; no 'D' when the timeline is unknown (status null).
// status "hang" never answers the query. Standalone: `bun test/fakes/safekeeper.ts '<json>'`
// prints {"port":N}, then one JSON line per request and per rejection.
import { be, showFrontend, startPgServer } from "./pgwire.ts";

export type SafekeeperStatus = { flush: string; commit: string } | null | "hang";

export interface FakeSafekeeperOptions {
  tenantId: string;
  timelineId: string;
  token?: string | null;
  status: SafekeeperStatus;
  /** Wait before answering TIMELINE_STATUS. */
  delayMs?: number;
  /** Accept connections and read the StartupMessage, then never answer anything. */
  silent?: boolean;
  onRequest?: (r: SafekeeperRequest) => void;
  onReject?: (why: string) => void;
  port?: number;
}

export interface SafekeeperRequest {
  at: number;
  startup: Record<string, string>;
  command: string;
}

export interface FakeSafekeeper {
  port: number;
  /** host:port, as in the spec's safekeeper_connstrings. */
  addr: string;
  requests: SafekeeperRequest[];
  rejections: string[];
  /** Connections accepted so far. */
  readonly connections: number;
  /** Changes the answer for later queries. */
  setStatus(s: SafekeeperStatus): void;
  stop(): Promise<void>;
}

export async function startFakeSafekeeper(opts: FakeSafekeeperOptions): Promise<FakeSafekeeper> {
  let status = opts.status;
  const requests: SafekeeperRequest[] = [];
  const options = `-c timeline_id=${opts.timelineId} tenant_id=${opts.tenantId}`;
  const hangs = new Set<() => void>();
  const server = await startPgServer({
    name: "safekeeper",
    password: opts.token ?? null,
    port: opts.port,
    onReject: opts.onReject,
    silent: () => opts.silent === true,
    checkStartup: (params, keys) => {
      if (keys.join(",") !== "client_encoding,user,options") {
        return `unexpected startup parameters [${keys.join(",")}] (expected client_encoding,user,options)`;
      }
      if (params.client_encoding !== "UTF8") return "client_encoding must be UTF8";
      if (params.options !== options) {
        return `options must be ${JSON.stringify(options)}, got ${JSON.stringify(params.options)}`;
      }
      return null;
    },
    session: async (conn) => {
      for (;;) {
        const m = await conn.next();
        if (m === null || m.type === "Terminate") return;
        if (m.type !== "Query" || m.sql !== "TIMELINE_STATUS") {
          await conn.reject(`unexpected ${showFrontend(m)} (expected Query "TIMELINE_STATUS")`);
          return;
        }
        const r = { at: Date.now(), startup: { ...conn.startup }, command: m.sql };
        requests.push(r);
        opts.onRequest?.(r);
        if (opts.delayMs) await Bun.sleep(opts.delayMs);
        const s = status;
        if (s === "hang") {
          // Hold the connection open until the client goes away or the server stops.
          await new Promise<void>((resolve) => {
            const done = () => {
              clearInterval(poll);
              hangs.delete(done);
              resolve();
            };
            const poll = setInterval(() => conn.closed && done(), 20);
            hangs.add(done);
          });
          return;
        }
        const msgs = [be.rowDescription(["flush_lsn", "commit_lsn"])];
        if (s !== null) msgs.push(be.dataRow([s.flush, s.commit]));
        msgs.push(be.commandComplete("TIMELINE_STATUS"), be.readyForQuery());
        await conn.send(...msgs);
      }
    },
  });
  return {
    port: server.port,
    addr: `127.0.0.1:${server.port}`,
    requests,
    rejections: server.rejections,
    get connections() {
      return server.connections;
    },
    setStatus(s) {
      status = s;
    },
    async stop() {
      for (const h of hangs) h();
      hangs.clear();
      await server.stop();
    },
  };
}

if (import.meta.main) {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as Omit<
    FakeSafekeeperOptions,
    "onRequest" | "onReject"
  >;
  const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const sk = await startFakeSafekeeper({
    ...cfg,
    onRequest: (request) => out({ request }),
    onReject: (rejection) => out({ rejection }),
  });
  out({ port: sk.port });
  const stop = () => void sk.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
