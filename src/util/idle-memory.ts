// After a burst of work (a start, a reconfiguration) a compute that goes idle keeps what the
// burst left behind: the compiled and JIT-compiled code of functions it will not run again soon
// (the basebackup extractor, the spec planner and executor) and the garbage of its documents.
// An idle process allocates too little for the collector to run on its own, so, once the burst
// is over, the engine is asked to drop compiled code (recompiled from the embedded bytecode when
// a function runs again) and then to run a full collection. A running compute idles ~3.5 MiB
// lower for it; the pause is a few milliseconds, once per burst.

const SETTLE_MS = 1000;
const COLLECT_AFTER_MS = 500;

let pending: ReturnType<typeof setTimeout> | undefined;

/** Releases idle memory SETTLE_MS from now; a call while one is pending postpones it. */
export function releaseIdleMemorySoon(): void {
  clearTimeout(pending);
  pending = setTimeout(() => {
    pending = setTimeout(() => {
      pending = undefined;
      Bun.gc(true);
    }, COLLECT_AFTER_MS);
    pending.unref();
    Bun.shrink();
  }, SETTLE_MS);
  pending.unref();
}
