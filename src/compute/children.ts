// The child processes compute_ctl supervises (postgres, sync-safekeepers, later the sidecars).
// The termination rule lives here: forward the signal each child expects, wait a bounded time,
// SIGKILL whatever remains, so no child ever outlives compute_ctl.
import type { Subprocess } from "bun";
import { log } from "../log.ts";

/** What a child is, which decides the signal it gets on termination. */
export type ChildRole = "postgres" | "sync-safekeepers" | "basebackup" | "other";

const TERMINATION_SIGNAL: Record<ChildRole, NodeJS.Signals> = {
  // Fast shutdown: SIGINT makes the postmaster write a shutdown checkpoint.
  postgres: "SIGINT",
  "sync-safekeepers": "SIGTERM",
  // compute_ctl's own basebackup child: no handler, so SIGTERM ends it at once.
  basebackup: "SIGTERM",
  other: "SIGTERM",
};

interface Child {
  role: ChildRole;
  proc: Subprocess;
}

export class Children {
  #children = new Set<Child>();
  #closed = false;

  /** Tracks `proc` until it exits. After `shutdown()`, a new child is killed at once. */
  add(role: ChildRole, proc: Subprocess): void {
    if (this.#closed) {
      // A retry loop may spawn after compute_ctl began exiting; that child has no work to do.
      log.warn(`compute_ctl is shutting down: killing the ${role} just started`, { pid: proc.pid });
      proc.kill("SIGKILL");
    }
    const child = { role, proc };
    this.#children.add(child);
    void proc.exited.finally(() => this.#children.delete(child));
  }

  get size(): number {
    return this.#children.size;
  }

  find(role: ChildRole): Subprocess | undefined {
    for (const c of this.#children) if (c.role === role) return c.proc;
    return undefined;
  }

  /** Sends every live child its termination signal (SIGINT to postgres, SIGTERM to the rest). */
  forwardTermination(): void {
    for (const c of this.#children) {
      const sig = TERMINATION_SIGNAL[c.role];
      log.info(`sending ${sig} to ${c.role}`, { pid: c.proc.pid });
      c.proc.kill(sig);
    }
  }

  /** compute_ctl is exiting: forward termination now, and refuse every child from here on. */
  shutdown(): void {
    this.#closed = true;
    this.forwardTermination();
  }

  /** shutdown(), then drain(graceMs): every child is gone when this resolves. */
  async close(graceMs: number): Promise<void> {
    this.shutdown();
    await this.drain(graceMs);
  }

  /** Waits up to `graceMs` for all children to exit, then SIGKILLs and reaps the rest. */
  async drain(graceMs: number): Promise<void> {
    const all = [...this.#children].map((c) => c.proc.exited);
    if (all.length === 0) return;
    let timer: Timer | undefined;
    const timedOut = await Promise.race([
      Promise.allSettled(all).then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return;
    for (const c of this.#children) {
      log.warn(`${c.role} did not exit within ${graceMs} ms, sending SIGKILL`, { pid: c.proc.pid });
      c.proc.kill("SIGKILL");
    }
    await Promise.allSettled([...this.#children].map((c) => c.proc.exited));
  }
}
