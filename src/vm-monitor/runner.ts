// One agent connection: the version handshake, the setup (file-cache connection, cgroup watcher,
// threshold), then messages handled one at a time and upscale requests sent while memory stays
// above the threshold. The server (server.ts) owns the socket; this owns the decisions.
import { formatOneLine } from "../errors.ts";
import type { Logger } from "../log.ts";
import { checkCgroupHost, type MemoryHistory, MemoryWatcher, totalSystemMemory } from "./cgroup.ts";
import type { FileCacheConnOptions } from "./connstr.ts";
import { FileCache } from "./filecache.ts";
import {
  type Allocation,
  type InboundMessage,
  negotiate,
  type OutboundMessage,
  ProtocolError,
  parseInbound,
  serializeOutbound,
} from "./protocol.ts";
import {
  cgroupThreshold,
  DOWNSCALE_THRESHOLD_BUFFER_BYTES,
  lfcSize,
  mib,
  usableMemory,
} from "./sizing.ts";

/** The whole setup of a connection (handshake included) must finish within this. */
export const SETUP_TIMEOUT_MS = 4000;
/** At most one UpscaleRequest per this interval. */
export const UPSCALE_REQUEST_INTERVAL_MS = 1000;
/** A downscale is refused with an error when the last memory sample is older than this. */
const STALE_STATS_MS = 5000;

/** What the monitor reports to /metrics. */
export interface VmMonitorMetricsSink {
  setConnected(connected: boolean): void;
  upscaleRequested(): void;
  setThreshold(bytes: number): void;
  setFileCacheSize(bytes: number): void;
}

export const NO_METRICS: VmMonitorMetricsSink = {
  setConnected: () => {},
  upscaleRequested: () => {},
  setThreshold: () => {},
  setFileCacheSize: () => {},
};

export interface RunnerConfig {
  /** The cgroup whose memory is watched; null: no watcher, no threshold. */
  cgroup: string | null;
  /** The file-cache connection; null: the file cache is not managed. */
  fileCache: FileCacheConnOptions | null;
  metrics: VmMonitorMetricsSink;
  log: Logger;
}

/** The socket as the runner sees it. */
export interface AgentSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
}

type Phase = "handshake" | "setup" | "ready" | "closed";

/** A close code and a short reason for the agent; details go to the log. */
const CLOSE = {
  normal: 1000,
  protocol: 1002,
  internal: 1011,
} as const;

export class Runner {
  #phase: Phase = "handshake";
  #chain: Promise<void> = Promise.resolve();
  #setupTimer: Timer | undefined;
  #fileCache: FileCache | null = null;
  #watcher: MemoryWatcher | null = null;
  #history: MemoryHistory | null = null;
  #threshold: number | null = null;
  /** Our ids are odd: the first UpscaleRequest is 3. */
  #counter = 1;
  #lastUpscaleRequestAt: number | null = null;
  /** A message is being handled: upscale checks wait for it, as memory updates queue behind it. */
  #busy = false;
  #onReady: () => void;
  #onClosed: () => void;

  constructor(
    private readonly socket: AgentSocket,
    private readonly config: RunnerConfig,
    hooks: { onReady: () => void; onClosed: () => void },
  ) {
    this.#onReady = hooks.onReady;
    this.#onClosed = hooks.onClosed;
    this.#setupTimer = setTimeout(() => {
      if (this.#phase === "handshake" || this.#phase === "setup") {
        this.config.log.error(`creating monitor timed out after ${SETUP_TIMEOUT_MS} ms`);
        this.close(CLOSE.internal, "setup timed out");
      }
    }, SETUP_TIMEOUT_MS);
  }

  /** A method, not a field test: the phase changes under awaits, which narrowing ignores. */
  #isClosed(): boolean {
    return this.#phase === "closed";
  }

  get ready(): boolean {
    return this.#phase === "ready";
  }

  get threshold(): number | null {
    return this.#threshold;
  }

  /** A frame from the agent: a string for a text frame, bytes otherwise. Handled in order. */
  frame(data: string | Uint8Array): void {
    if (this.#isClosed()) return;
    this.#chain = this.#chain.then(() => this.#handleFrame(data));
  }

  /** Closes the connection (once), releasing the Postgres connection and the watcher. */
  close(code: number, reason: string): void {
    if (this.#isClosed()) return;
    this.#phase = "closed";
    clearTimeout(this.#setupTimer);
    this.#watcher?.stop();
    void this.#fileCache?.close();
    try {
      this.socket.close(code, reason);
    } catch {
      // already closed by the peer
    }
    this.#onClosed();
  }

  /** The agent closed the socket. */
  peerClosed(): void {
    if (this.#isClosed()) return;
    this.config.log.info(
      this.#phase === "ready"
        ? "dispatcher connection closed"
        : "websocket connection closed while setting up",
    );
    this.close(CLOSE.normal, "closed");
  }

  async #handleFrame(data: string | Uint8Array): Promise<void> {
    if (this.#isClosed()) return;
    try {
      if (this.#phase === "handshake") await this.#handshake(data);
      else await this.#message(data);
    } catch (err) {
      if (this.#isClosed()) return;
      const protocol = err instanceof ProtocolError;
      this.config.log.error(`monitor terminated unexpectedly: ${formatOneLine(err)}`);
      this.close(protocol ? CLOSE.protocol : CLOSE.internal, protocol ? "bad message" : "error");
    }
  }

  async #handshake(data: string | Uint8Array): Promise<void> {
    if (typeof data !== "string") {
      throw new ProtocolError("received non-text message during protocol handshake");
    }
    const outcome = negotiate(data);
    this.socket.send(outcome.reply);
    if (outcome.kind === "refused") {
      this.config.log.error(`error determining suitable protocol version range: ${outcome.reason}`);
      this.close(CLOSE.protocol, "no common protocol version");
      return;
    }
    this.config.log.info(`agreed on protocol version ${outcome.version}`);
    this.#phase = "setup";
    await this.#setup();
  }

  async #setup(): Promise<void> {
    const { log, metrics } = this.config;
    const total = await totalSystemMemory();
    const parts: string[] = [];
    if (this.config.fileCache) {
      const fc = new FileCache(this.config.fileCache, log);
      this.#fileCache = fc;
      if (this.#isClosed()) return void fc.close();
      let before: number;
      try {
        before = await fc.currentSize();
      } catch (err) {
        throw new Error("failed to create file cache", { cause: err });
      }
      if (this.#isClosed()) return;
      // Set even when unchanged: it proves the permission to do so.
      const set = await fc.setSize(lfcSize(total)).catch((err) => {
        throw new Error("failed to set file cache size, possibly due to inadequate permissions", {
          cause: err,
        });
      });
      metrics.setFileCacheSize(set.bytes);
      parts.push(
        `file cache ${mib(before)} MiB -> ${mib(set.bytes)} MiB${set.capped ? " (capped by maximum size)" : ""}`,
      );
    }
    if (this.#isClosed()) return;
    if (this.config.cgroup !== null) {
      await checkCgroupHost();
      if (this.#isClosed()) return;
      const watcher = new MemoryWatcher(
        this.config.cgroup,
        (h) => this.#onMemory(h),
        (m) => log.warn(m),
      );
      this.#watcher = watcher;
      await watcher.start();
      if (this.#isClosed()) return void watcher.stop();
      this.#threshold = cgroupThreshold(total);
      metrics.setThreshold(this.#threshold);
      parts.push(`memory threshold ${mib(this.#threshold)} MiB of ${mib(total)} MiB`);
    }
    clearTimeout(this.#setupTimer);
    this.#phase = "ready";
    log.info(
      `connected to agent: ${parts.length ? parts.join(", ") : "not managing cgroup or file cache"}`,
    );
    this.#onReady();
    this.#maybeRequestUpscale();
  }

  async #message(data: string | Uint8Array): Promise<void> {
    if (typeof data !== "string") {
      this.config.log.warn(
        "problem processing incoming message: agent should only send text messages but received different type",
      );
      return;
    }
    const msg = parseInbound(data);
    this.#busy = true;
    try {
      const reply = await this.#process(msg);
      if (reply && this.#phase === "ready") this.#send(reply);
    } finally {
      this.#busy = false;
    }
    this.#maybeRequestUpscale();
  }

  async #process(msg: InboundMessage): Promise<OutboundMessage | null> {
    const { log } = this.config;
    switch (msg.type) {
      case "HealthCheck":
        return { type: "HealthCheck", id: msg.id };
      case "InvalidMessage":
        log.warn(`received notification of an invalid message we sent: ${msg.error}`, {
          id: msg.id,
        });
        return null;
      case "InternalError":
        log.warn(`agent experienced an internal error: ${msg.error}`, { id: msg.id });
        return null;
      case "UpscaleNotification":
        try {
          await this.#upscale(msg.granted);
          return { type: "UpscaleConfirmation", id: msg.id };
        } catch (err) {
          log.warn(`error handling message: failed to handle upscale: ${formatOneLine(err)}`);
          return { type: "InternalError", id: msg.id, error: "failed to handle upscale" };
        }
      case "DownscaleRequest":
        try {
          const { ok, status } = await this.#downscale(msg.target);
          return { type: "DownscaleResult", id: msg.id, ok, status };
        } catch (err) {
          log.warn(`error handling message: failed to downscale: ${formatOneLine(err)}`);
          return { type: "InternalError", id: msg.id, error: "failed to downscale" };
        }
    }
  }

  async #upscale(granted: Allocation): Promise<void> {
    const { log, metrics } = this.config;
    if (!this.#fileCache && this.#threshold === null) {
      log.info(
        `upscale to ${mib(granted.mem)} MiB: no action needed (no cgroup or file cache enabled)`,
      );
      return;
    }
    const usable = usableMemory(granted.mem);
    const parts: string[] = [];
    let warn = false;
    if (this.#fileCache) {
      const expected = lfcSize(usable);
      const set = await this.#fileCache.setSize(expected);
      metrics.setFileCacheSize(set.bytes);
      if (set.bytes !== expected) {
        warn = true;
        parts.push(
          `file cache was set to a different size than we wanted: target = ${mib(expected)} MiB, actual = ${mib(set.bytes)} MiB`,
        );
      } else {
        parts.push(`set file cache size to ${mib(set.bytes)} MiB`);
      }
    }
    if (this.#threshold !== null) {
      const next = cgroupThreshold(usable);
      parts.push(
        `set cgroup memory threshold from ${mib(this.#threshold)} MiB to ${mib(next)} MiB of new total ${mib(usable)} MiB`,
      );
      this.#threshold = next;
      metrics.setThreshold(next);
    }
    const line = `upscale to ${mib(granted.mem)} MiB: ${parts.join("; ")}`;
    if (warn) log.warn(line);
    else log.info(line);
  }

  async #downscale(target: Allocation): Promise<{ ok: boolean; status: string }> {
    const { log, metrics } = this.config;
    if (!this.#fileCache && this.#threshold === null) {
      const status = "monitor is not managing cgroup or file cache";
      log.info(`downscale to ${mib(target.mem)} MiB approved: ${status}`);
      return { ok: true, status };
    }
    const usable = usableMemory(target.mem);
    const expectedLfc = this.#fileCache ? lfcSize(usable) : 0;
    if (this.#threshold !== null) {
      const h = this.#history;
      if (!h || performance.now() - h.at > STALE_STATS_MS) {
        throw new Error(
          "haven't gotten cgroup memory stats recently enough to determine downscaling information",
        );
      }
      if (h.samplesCount <= 1) {
        const status = "haven't received enough cgroup memory stats yet";
        log.info(`downscale to ${mib(target.mem)} MiB refused: ${status}`);
        return { ok: false, status };
      }
      const next = cgroupThreshold(usable);
      if (next < h.avgNonReclaimable + DOWNSCALE_THRESHOLD_BUFFER_BYTES) {
        const status = `calculated memory threshold too low: ${mib(next)} MiB (new threshold) < ${mib(h.avgNonReclaimable)} (current usage) + ${mib(DOWNSCALE_THRESHOLD_BUFFER_BYTES)} (downscale buffer)`;
        log.info(`downscale to ${mib(target.mem)} MiB refused: ${status}`);
        return { ok: false, status };
      }
    }
    const parts: string[] = [];
    if (this.#fileCache) {
      const set = await this.#fileCache.setSize(expectedLfc);
      metrics.setFileCacheSize(set.bytes);
      parts.push(`set file cache size to ${mib(set.bytes)} MiB`);
    }
    if (this.#threshold !== null) {
      const next = cgroupThreshold(usable);
      parts.push(
        `set cgroup memory threshold from ${mib(this.#threshold)} MiB to ${mib(next)} MiB, of new total ${mib(usable)} MiB`,
      );
      this.#threshold = next;
      metrics.setThreshold(next);
    }
    const status = parts.join("; ");
    log.info(`downscale to ${mib(target.mem)} MiB approved: ${status}`);
    return { ok: true, status };
  }

  #onMemory(h: MemoryHistory): void {
    this.#history = h;
    this.#maybeRequestUpscale();
  }

  #maybeRequestUpscale(): void {
    if (this.#phase !== "ready" || this.#busy) return;
    const h = this.#history;
    if (!h || this.#threshold === null || h.avgNonReclaimable < this.#threshold) return;
    const now = performance.now();
    if (
      this.#lastUpscaleRequestAt !== null &&
      now - this.#lastUpscaleRequestAt < UPSCALE_REQUEST_INTERVAL_MS
    ) {
      return;
    }
    this.#lastUpscaleRequestAt = now;
    this.#counter += 2;
    this.config.log.info(
      `cgroup memory stats are high enough to upscale, requesting upscale: ${mib(h.avgNonReclaimable)} MiB >= threshold ${mib(this.#threshold)} MiB`,
      { id: this.#counter },
    );
    this.config.metrics.upscaleRequested();
    try {
      this.#send({ type: "UpscaleRequest", id: this.#counter });
    } catch (err) {
      this.config.log.error(`monitor terminated unexpectedly: ${formatOneLine(err)}`);
      this.close(CLOSE.internal, "send failed");
    }
  }

  #send(m: OutboundMessage): void {
    if (m.type === "HealthCheck") this.config.log.debug("sending message", { id: m.id });
    this.socket.send(serializeOutbound(m));
  }
}
