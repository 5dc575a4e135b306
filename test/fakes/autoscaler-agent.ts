// A fake autoscaler-agent: dials ws://HOST:PORT/monitor and speaks protocol v1 as the real agent
// does (even ids from 2, `content` always sent, one request at a time). It is strict about what the monitor
// sends: a handshake answer of exactly {"version":N} or {"error":S}; afterwards internally tagged
// messages of a known type with an integer id, the right fields for that type, replies only to ids
// it has outstanding, UpscaleRequest only with odd ids. Anything else is a violation, recorded in
// `violations` (the real agent would answer InvalidMessage or close with 1011).

import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Allocation {
  cpu: number;
  mem: number;
}

export type MonitorMessage =
  | { type: "UpscaleRequest"; id: number }
  | { type: "UpscaleConfirmation"; id: number }
  | { type: "DownscaleResult"; id: number; Ok: boolean; Status: string }
  | { type: "HealthCheck"; id: number }
  | { type: "InternalError"; id: number; error: string }
  | { type: "InvalidMessage"; id: number; error: string };

const FIELDS: Record<string, Record<string, "string" | "boolean">> = {
  UpscaleRequest: {},
  UpscaleConfirmation: {},
  HealthCheck: {},
  DownscaleResult: { Ok: "boolean", Status: "string" },
  InternalError: { error: "string" },
  InvalidMessage: { error: "string" },
};

/** Which of our requests each reply type may answer. */
const ANSWERS: Record<string, string[]> = {
  UpscaleConfirmation: ["UpscaleNotification"],
  DownscaleResult: ["DownscaleRequest"],
  HealthCheck: ["HealthCheck"],
  InternalError: ["UpscaleNotification", "DownscaleRequest", "HealthCheck"],
  InvalidMessage: ["UpscaleNotification", "DownscaleRequest", "HealthCheck"],
};

interface Pending {
  type: string;
  resolve(m: MonitorMessage): void;
  reject(e: Error): void;
  timer: Timer;
}

export interface Closed {
  code: number;
  reason: string;
  at: number;
}

export class FakeAgent {
  readonly violations: string[] = [];
  /** UpscaleRequests received, with when (performance.now()). */
  readonly upscaleRequests: { id: number; at: number }[] = [];
  /** Every text frame received, in order. */
  readonly received: string[] = [];
  readonly closed: Promise<Closed>;
  #ws: WebSocket;
  #nextId = 0;
  #pending = new Map<number, Pending>();
  #handshake: ((text: string) => void) | null = null;
  #handshakeDone = false;
  #upscaleWaiters: (() => void)[] = [];
  #isClosed = false;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (ev) => {
        this.#isClosed = true;
        for (const p of this.#pending.values()) {
          clearTimeout(p.timer);
          p.reject(new Error(`connection closed (${ev.code}) before the reply`));
        }
        this.#pending.clear();
        resolve({ code: ev.code, reason: ev.reason, at: performance.now() });
      });
    });
    ws.addEventListener("message", (ev) => this.#onMessage(ev.data));
  }

  /** Opens the WebSocket (no handshake yet). Rejects when the upgrade fails. */
  static async connect(url: string, timeoutMs = 4000): Promise<FakeAgent> {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`connecting to ${url} timed out`)),
        timeoutMs,
      );
      ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve();
      });
      ws.addEventListener("error", () => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to ${url}`));
      });
    });
    return new FakeAgent(ws);
  }

  /** Connects and completes the v1 handshake; throws if the monitor refuses it. */
  static async connected(url: string): Promise<FakeAgent> {
    const agent = await FakeAgent.connect(url);
    const answer = await agent.handshake({ min: 1, max: 1 });
    if (answer?.version !== 1) throw new Error(`handshake refused: ${JSON.stringify(answer)}`);
    return agent;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Sends a version range and waits for the answer, or null when the connection closed with none.
   * `range` is sent as given, so a test may send a malformed one.
   */
  async handshake(
    range: unknown,
    timeoutMs = 5000,
  ): Promise<{ version?: number; error?: string } | null> {
    const answer = new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      this.#handshake = (text) => {
        clearTimeout(timer);
        resolve(text);
      };
      void this.closed.then(() => {
        clearTimeout(timer);
        resolve(null);
      });
    });
    this.#ws.send(typeof range === "string" ? range : JSON.stringify(range));
    const text = await answer;
    this.#handshake = null;
    this.#handshakeDone = true;
    if (text === null) return null;
    const v = JSON.parse(text) as Record<string, unknown>;
    const keys = Object.keys(v);
    const ok =
      (keys.length === 1 && keys[0] === "version" && Number.isInteger(v.version)) ||
      (keys.length === 1 && keys[0] === "error" && typeof v.error === "string");
    if (!ok) this.violations.push(`bad handshake answer: ${text}`);
    return v as { version?: number; error?: string };
  }

  /** Sends an agent message (adjacently tagged, even id) and waits for the monitor's reply. */
  request(
    type: "UpscaleNotification" | "DownscaleRequest" | "HealthCheck",
    content: Record<string, unknown> = {},
    timeoutMs = 5000,
  ): Promise<MonitorMessage> {
    this.#nextId += 2;
    const id = this.#nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no reply to ${type} ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { type, resolve, reject, timer });
      this.#ws.send(JSON.stringify({ content, type, id }));
    });
  }

  healthCheck(): Promise<MonitorMessage> {
    return this.request("HealthCheck");
  }

  upscaleNotification(granted: Allocation): Promise<MonitorMessage> {
    return this.request("UpscaleNotification", { granted });
  }

  downscaleRequest(target: Allocation): Promise<MonitorMessage> {
    return this.request("DownscaleRequest", { target });
  }

  /** Sends a frame as given (text or binary), outside the request bookkeeping. */
  sendRaw(data: string | Uint8Array): void {
    this.#ws.send(data);
  }

  /** Resolves when `count` UpscaleRequests have arrived in total. */
  async waitUpscaleRequests(count: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.upscaleRequests.length < count) {
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `expected ${count} UpscaleRequests within ${timeoutMs} ms, got ${this.upscaleRequests.length}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#upscaleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(code = 1000): void {
    this.#ws.close(code);
  }

  #onMessage(data: unknown): void {
    if (typeof data !== "string") {
      this.violations.push("the monitor sent a binary frame");
      return;
    }
    this.received.push(data);
    if (!this.#handshakeDone) {
      if (this.#handshake) this.#handshake(data);
      else this.violations.push(`message before the handshake: ${data}`);
      return;
    }
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(data);
    } catch {
      this.violations.push(`not JSON: ${data}`);
      return;
    }
    const { type, id } = v;
    if (typeof type !== "string" || !(type in FIELDS)) {
      this.violations.push(`unknown type: ${data}`);
      return;
    }
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      this.violations.push(`bad id: ${data}`);
      return;
    }
    const fields = FIELDS[type]!;
    for (const key of Object.keys(v)) {
      if (key === "type" || key === "id") continue;
      if (!(key in fields)) this.violations.push(`unexpected field ${key}: ${data}`);
    }
    for (const [key, kind] of Object.entries(fields)) {
      if (typeof v[key] !== kind) this.violations.push(`field ${key} is not a ${kind}: ${data}`);
    }
    const msg = v as unknown as MonitorMessage;
    if (type === "UpscaleRequest") {
      if (id % 2 !== 1) this.violations.push(`UpscaleRequest with an even id: ${data}`);
      this.upscaleRequests.push({ id, at: performance.now() });
      for (const w of this.#upscaleWaiters.splice(0)) w();
      return;
    }
    const pending = this.#pending.get(id);
    if (!pending) {
      this.violations.push(`reply to an unknown id: ${data}`);
      return;
    }
    if (!ANSWERS[type]?.includes(pending.type)) {
      this.violations.push(`${type} does not answer ${pending.type}: ${data}`);
    }
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(msg);
  }
}

/** A fake host for the monitor: cgroup root with the memory controller, meminfo, one group. */
export interface FakeCgroupHost {
  /** What COMPUTE_CTL_TESTING_HOST_ROOT points at. */
  root: string;
  statPath: string;
  /** Rewrites `<group>/memory.stat` (a new file renamed over the old one, as a test replaces it). */
  setUsage(activeAnon: number, inactiveAnon?: number): void;
}

/**
 * Lays out `<root>/proc/meminfo` (MemTotal = memTotalBytes) and `<root>/sys/fs/cgroup/` with
 * `cgroup.controllers` listing memory and `<cgroup>/memory.stat` at zero usage, readable by all.
 */
export function makeFakeCgroupHost(
  root: string,
  opts: { memTotalBytes: number; cgroup?: string; controllers?: string },
): FakeCgroupHost {
  const cgroup = opts.cgroup ?? "neon-postgres";
  mkdirSync(join(root, "proc"), { recursive: true, mode: 0o755 });
  mkdirSync(join(root, "sys/fs/cgroup", cgroup), { recursive: true, mode: 0o755 });
  writeFileSync(
    join(root, "proc/meminfo"),
    `MemTotal:       ${Math.floor(opts.memTotalBytes / 1024)} kB\nMemFree:         1000 kB\n`,
    { mode: 0o644 },
  );
  writeFileSync(
    join(root, "sys/fs/cgroup/cgroup.controllers"),
    `${opts.controllers ?? "cpuset cpu io memory hugetlb pids"}\n`,
    { mode: 0o644 },
  );
  const statPath = join(root, "sys/fs/cgroup", cgroup, "memory.stat");
  let n = 0;
  const setUsage = (activeAnon: number, inactiveAnon = 0) => {
    const tmp = `${statPath}.tmp${n++}`;
    writeFileSync(
      tmp,
      `anon ${activeAnon + inactiveAnon}\nfile 4096\ninactive_anon ${inactiveAnon}\nactive_anon ${activeAnon}\ninactive_file 0\nactive_file 4096\n`,
      { mode: 0o644 },
    );
    renameSync(tmp, statPath);
  };
  setUsage(0);
  return { root, statPath, setUsage };
}
