// The vm-monitor's listener: `GET /monitor` upgraded to a WebSocket on its own address (Bun's
// native WebSocket server), one agent at a time. A new upgrade closes the current connection
// first, and its Postgres connection with it.
import type { Server, ServerWebSocket } from "bun";
import { formatOneLine } from "../errors.ts";
import { type Logger, log as rootLog } from "../log.ts";
import type { FileCacheConnOptions } from "./connstr.ts";
import { NO_METRICS, Runner, type VmMonitorMetricsSink } from "./runner.ts";

export const DEFAULT_VM_MONITOR_ADDR = "0.0.0.0:10301";

export interface VmMonitorOptions {
  /** `host:port` (`[v6]:port` for IPv6) to listen on. */
  addr: string;
  /** The cgroup to watch; null: no memory watcher. */
  cgroup: string | null;
  /** The file-cache connection; null: the file cache is not managed. */
  fileCache: FileCacheConnOptions | null;
  metrics?: VmMonitorMetricsSink;
  log?: Logger;
}

export interface VmMonitor {
  /** The port actually bound (the given one, or the kernel's pick for port 0). */
  readonly port: number;
  /** Closes the agent's connection and the listener. */
  stop(): Promise<void>;
}

/** Splits `host:port` / `[v6]:port` as a socket address: an IP and a port, nothing else. */
export function parseListenAddr(addr: string): { hostname: string; port: number } {
  const m = addr.match(/^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/) ?? addr.match(/^([0-9.]+):(\d{1,5})$/);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) {
    throw new Error(`invalid socket address syntax: '${addr}' (expected IP:PORT)`);
  }
  return { hostname: m[1]!, port };
}

interface SocketData {
  runner: Runner | null;
}

/**
 * Binds the listener and serves agents until stop(). Throws when the address is invalid or cannot
 * be bound (the caller logs it; nothing is left listening).
 */
export function startVmMonitor(opts: VmMonitorOptions): VmMonitor {
  const log = opts.log ?? rootLog.span("vm_monitor");
  const metrics = opts.metrics ?? NO_METRICS;
  const { hostname, port } = parseListenAddr(opts.addr);
  let current: Runner | null = null;
  let stopping = false;
  metrics.setConnected(false);

  const refreshConnected = () => metrics.setConnected(current?.ready ?? false);

  let server: Server<SocketData>;
  try {
    server = Bun.serve<SocketData>({
      hostname,
      port,
      // No request of ours needs more; the agent's messages are small.
      maxRequestBodySize: 64 * 1024,
      fetch(req, srv) {
        const url = new URL(req.url);
        if (url.pathname !== "/monitor") return new Response("Not Found", { status: 404 });
        if (req.method !== "GET") return new Response("Method Not Allowed", { status: 405 });
        if (stopping) return new Response("Service Unavailable", { status: 503 });
        if (!srv.upgrade(req, { data: { runner: null } })) {
          return new Response("Connection header did not include 'upgrade'", { status: 400 });
        }
        return undefined;
      },
      websocket: {
        // The reference sends no pings and has no idle limit; the agent's health checks (every
        // 5 s) show whether the connection lives, and a new agent connection replaces it.
        idleTimeout: 0,
        sendPings: false,
        maxPayloadLength: 1024 * 1024,
        open(ws: ServerWebSocket<SocketData>) {
          if (current) {
            log.info("closing old connection: a new agent connected");
            current.close(1000, "killed due to new connection");
          }
          log.info("accepted new websocket connection -> starting monitor");
          const runner: Runner = new Runner(
            {
              send: (text) => {
                if (ws.send(text) === 0) throw new Error("stream error sending message");
              },
              close: (code, reason) => ws.close(code, reason),
            },
            { cgroup: opts.cgroup, fileCache: opts.fileCache, metrics, log },
            {
              onReady: refreshConnected,
              onClosed: () => {
                if (current === runner) current = null;
                refreshConnected();
              },
            },
          );
          ws.data.runner = runner;
          current = runner;
        },
        message(ws, message) {
          ws.data.runner?.frame(typeof message === "string" ? message : new Uint8Array(message));
        },
        close(ws) {
          ws.data.runner?.peerClosed();
        },
      },
    });
  } catch (err) {
    throw new Error(`failed to bind to ${opts.addr}: ${formatOneLine(err)}`, { cause: err });
  }
  log.info(`server bound on ${opts.addr}`);

  return {
    port: server.port ?? port,
    async stop() {
      stopping = true;
      current?.close(1001, "vm-monitor shutting down");
      await server.stop(true);
    },
  };
}
