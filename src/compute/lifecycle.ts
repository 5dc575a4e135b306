// The lifecycle of one compute: wait for a spec, start, serve, terminate, exit. It orchestrates
// the other modules and owns no protocol; the HTTP routes call `configure` and `terminate`.
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { formatChain, formatOneLine } from "../errors.ts";
import { log, nowMicros } from "../log.ts";
import { knobs } from "../testing-knobs.ts";
import type { Children } from "./children.ts";
import { reconfigureCompute, startCompute } from "./start.ts";
import type { ComputeState } from "./state.ts";
import type { ComputeStatus } from "./status.ts";

export type TerminateMode = "fast" | "immediate";

export type ConfigureResult =
  | { kind: "running" }
  | { kind: "failed"; error: string }
  | { kind: "invalid-status"; status: ComputeStatus };

export type TerminateResult =
  | { kind: "terminated"; lsn: string | null }
  | { kind: "already-terminated"; lsn: string | null }
  | { kind: "invalid-status"; status: ComputeStatus };

const TERMINATION_PENDING: readonly ComputeStatus[] = [
  "termination_pending_fast",
  "termination_pending_immediate",
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Lifecycle {
  #pspec: ParsedSpec | null;

  constructor(
    private readonly state: ComputeState,
    private readonly children: Children,
    initialSpec: ParsedSpec | null,
  ) {
    this.#pspec = initialSpec;
    if (initialSpec) this.#recordSpec(initialSpec);
  }

  get spec(): ParsedSpec | null {
    return this.#pspec;
  }

  /** Runs the compute to its end and returns the process exit code. */
  async run(): Promise<number> {
    const { state } = this;
    if (!this.#pspec) {
      log.info("no compute spec provided, waiting for one via /configure");
      const woke = await state.waitFor(["configuration_pending", ...TERMINATION_PENDING]);
      if (TERMINATION_PENDING.includes(woke)) {
        // Nothing runs yet, so there is nothing to stop: terminate at once. (The reference hangs.)
        return this.#finishTermination(woke, 0);
      }
      const now = nowMicros();
      state.timings.wait_for_spec_ms = Math.max(
        0,
        Math.round((now - state.startTimeMicros) / 1000),
      );
      state.startTimeMicros = now;
    }
    const pspec = this.#pspec;
    if (!pspec) throw new Error("internal error: woke up for configuration without a spec");

    try {
      state.set("init");
      await startCompute(pspec);
      state.set("running");
    } catch (err) {
      log.error(`could not start the compute node: ${formatOneLine(err)}`);
      state.fail(formatChain(err));
      await this.children.drain(knobs.childGraceMs);
      // Keep serving /status for a while so the control plane can read the error, then exit 1
      // (the reference exits with Postgres's code, often 0, when Postgres had started).
      await sleep(knobs.failedExitDelayMs);
      return 1;
    }
    // Waiting for Postgres to exit and the shutdown sync belong to the start path.
    throw new Error("internal error: compute reached running without a start path");
  }

  /** POST /configure: accept a new spec in `empty` or `running`, then wait for the outcome. */
  async configure(pspec: ParsedSpec): Promise<ConfigureResult> {
    const { state } = this;
    const from = state.status;
    if (from !== "empty" && from !== "running") return { kind: "invalid-status", status: from };
    this.#pspec = pspec;
    this.#recordSpec(pspec);
    state.set("configuration_pending");
    if (from === "running") void this.#reconfigure(pspec);
    const outcome = await state.waitFor(["running", "failed"]);
    if (outcome === "running") return { kind: "running" };
    return { kind: "failed", error: state.error ?? "unknown error" };
  }

  /** POST /terminate: ask the compute to stop and wait until it has. */
  async terminate(mode: TerminateMode): Promise<TerminateResult> {
    const { state } = this;
    if (state.status === "terminated") {
      return { kind: "already-terminated", lsn: state.terminateFlushLsn };
    }
    if (state.status !== "empty" && state.status !== "running") {
      return { kind: "invalid-status", status: state.status };
    }
    state.set(mode === "fast" ? "termination_pending_fast" : "termination_pending_immediate");
    this.children.forwardTermination();
    await state.waitFor(["terminated"]);
    return { kind: "terminated", lsn: state.terminateFlushLsn };
  }

  async #reconfigure(pspec: ParsedSpec): Promise<void> {
    const { state } = this;
    state.set("configuration");
    try {
      await reconfigureCompute(pspec);
      state.set("running");
    } catch (err) {
      log.error(`could not configure the compute: ${formatOneLine(err)}`);
      state.fail(formatChain(err));
    }
  }

  async #finishTermination(pending: ComputeStatus, code: number): Promise<number> {
    this.state.set("terminated");
    await sleep(
      pending === "termination_pending_fast" ? knobs.fastLingerMs : knobs.immediateLingerMs,
    );
    return code;
  }

  #recordSpec(pspec: ParsedSpec): void {
    this.state.tenant = pspec.tenantId;
    this.state.timeline = pspec.timelineId;
  }
}
