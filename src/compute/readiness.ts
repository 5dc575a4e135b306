// The compute's status as systemd's readiness protocol (Type=notify) sees it: READY=1 when it
// first reaches `running`, STATUS=<status> on every change (spelled as in /status), STOPPING=1
// once when it begins to terminate.

import type { ComputeStatus } from "../api/status.ts";
import type { ComputeState } from "./state.ts";

const TERMINATING: readonly ComputeStatus[] = [
  "termination_pending_fast",
  "termination_pending_immediate",
  "terminated",
];

export interface Readiness {
  /** compute_ctl is exiting (a signal, or the lifecycle has ended): STOPPING=1 if not yet sent. */
  stopping(): void;
  detach(): void;
}

/** Reports `state` through `send` (one datagram of newline-separated assignments per call). */
export function reportReadiness(state: ComputeState, send: (message: string) => void): Readiness {
  let ready = false;
  let stopping = false;
  send(`STATUS=${state.status}`);
  const detach = state.onChange((to) => {
    const lines: string[] = [];
    if (to === "running" && !ready) {
      ready = true;
      lines.push("READY=1");
    }
    if (TERMINATING.includes(to) && !stopping) {
      stopping = true;
      lines.push("STOPPING=1");
    }
    lines.push(`STATUS=${to}`);
    send(lines.join("\n"));
  });
  return {
    stopping() {
      if (stopping) return;
      stopping = true;
      send("STOPPING=1");
    },
    detach,
  };
}
