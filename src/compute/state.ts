// The compute's state: status with awaitable transitions, the fields /status reports, and the
// startup timings of /metrics.json. One event loop, so a transition is a synchronous assignment
// followed by a notification; "wait until status is X" is a promise.
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { type ComputeMetrics, emptyComputeMetrics } from "../api/responses.ts";
import { COMPUTE_STATUSES, type ComputeStatus, displayStatus } from "../api/status.ts";
import { log } from "../log.ts";
import type { Metrics } from "../metrics/registry.ts";
import { nowMicros } from "../util/clock.ts";
import { BUILD_TAG } from "../version.ts";

/** Where each status may go. Every live status may also go to `failed`. */
const TRANSITIONS: Record<ComputeStatus, readonly ComputeStatus[]> = {
  empty: [
    "configuration_pending",
    "init",
    "termination_pending_fast",
    "termination_pending_immediate",
  ],
  configuration_pending: ["init", "configuration"],
  init: ["running"],
  running: [
    "configuration_pending",
    "termination_pending_fast",
    "termination_pending_immediate",
    "refresh_configuration_pending",
  ],
  configuration: ["running"],
  failed: [
    "refresh_configuration_pending",
    "termination_pending_fast",
    "termination_pending_immediate",
  ],
  termination_pending_fast: ["terminated"],
  termination_pending_immediate: ["terminated"],
  terminated: [],
  refresh_configuration_pending: ["refresh_configuration"],
  refresh_configuration: ["running", "refresh_configuration_pending"],
};

const APPLYING: readonly ComputeStatus[] = [
  "configuration_pending",
  "configuration",
  "refresh_configuration",
];
const NOT_APPLYING = COMPUTE_STATUSES.filter((s) => !APPLYING.includes(s));

export function canTransition(from: ComputeStatus, to: ComputeStatus): boolean {
  if (to === "failed") return from !== "failed" && from !== "terminated";
  return TRANSITIONS[from].includes(to);
}

export class IllegalTransitionError extends Error {
  override name = "IllegalTransitionError";
}

type Waiter = { accept: (s: ComputeStatus) => boolean; resolve: (s: ComputeStatus) => void };

export class ComputeState {
  #status: ComputeStatus = "empty";
  #waiters = new Set<Waiter>();
  #listeners = new Set<(to: ComputeStatus, from: ComputeStatus) => void>();

  /** Process start, reset to the spec's arrival on the /configure path (µs since epoch). */
  startTimeMicros: number;
  lastActiveMicros: number | null = null;
  /** The start or reconfigure failure, rendered as the reference renders it (multi-line chain). */
  error: string | null = null;
  /**
   * The installed-extensions collection interval in seconds derived from the spec's suspend
   * timeout once a spec was applied; null until then (--installed-extensions-collection-interval
   * applies).
   */
  extensionStatsIntervalSeconds: number | null = null;
  /** The spec the compute runs (or will run) with; the lifecycle sets it, everyone else reads. */
  spec: ParsedSpec | null = null;
  terminateFlushLsn: string | null = null;
  readonly timings: ComputeMetrics = emptyComputeMetrics();

  constructor(
    private readonly metrics: Metrics,
    startTimeMicros: number = nowMicros(),
  ) {
    this.startTimeMicros = startTimeMicros;
    this.#publish();
  }

  /** The spec's tenant, which /status reports. */
  get tenant(): string | null {
    return this.spec?.tenantId ?? null;
  }

  /** The spec's timeline, which /status reports. */
  get timeline(): string | null {
    return this.spec?.timelineId ?? null;
  }

  /** Advances `lastActiveMicros` to `micros`; false (no change) when it already is as late. */
  noteActivity(micros: number): boolean {
    if (this.lastActiveMicros !== null && micros <= this.lastActiveMicros) return false;
    this.lastActiveMicros = micros;
    return true;
  }

  get status(): ComputeStatus {
    return this.#status;
  }

  /**
   * Moves to `to`, logs the change, keeps `compute_ctl_up` at exactly one series and wakes
   * waiters. An illegal move is a bug and throws. Unlike the reference, every transition
   * (Terminated included) updates the metric.
   */
  set(to: ComputeStatus): void {
    const from = this.#status;
    if (!canTransition(from, to)) {
      throw new IllegalTransitionError(
        `illegal compute status transition from ${displayStatus(from)} to ${displayStatus(to)}`,
      );
    }
    log.info(`Changing compute status from ${displayStatus(from)} to ${displayStatus(to)}`);
    this.#status = to;
    this.#publish();
    for (const l of this.#listeners) l(to, from);
    for (const w of [...this.#waiters]) {
      if (w.accept(to)) {
        this.#waiters.delete(w);
        w.resolve(to);
      }
    }
  }

  /** Records a failure: the error text for /status, then the `failed` status. */
  fail(errorText: string): void {
    this.error = errorText;
    if (this.#status !== "failed") this.set("failed");
  }

  /** Resolves with the status as soon as it is one of `statuses` (at once if it already is). */
  waitFor(statuses: readonly ComputeStatus[]): Promise<ComputeStatus> {
    if (statuses.includes(this.#status)) return Promise.resolve(this.#status);
    return new Promise((resolve) => {
      this.#waiters.add({ accept: (s) => statuses.includes(s), resolve });
    });
  }

  /**
   * Resolves once no spec apply is about to run or running (at once when none is): the status is
   * none of configuration_pending, configuration and refresh_configuration.
   */
  whenNotApplying(): Promise<ComputeStatus> {
    return this.waitFor(NOT_APPLYING);
  }

  onChange(listener: (to: ComputeStatus, from: ComputeStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #publish(): void {
    this.metrics.up.reset();
    this.metrics.up.set({ build_tag: BUILD_TAG, status: displayStatus(this.#status) }, 1);
  }
}
