// The documented exit for SIGINT, SIGTERM and SIGQUIT is code 1, from the first moment compute_ctl
// runs JavaScript: the entry installs these handlers before it loads anything else (loading the
// rest takes a noticeable time, during which a signal would otherwise end the process by the
// signal). Until the run installs its own shutdown handlers there is nothing to shut down, so the
// process exits 1 at once.
const SIGNALS = ["SIGINT", "SIGTERM", "SIGQUIT"] as const;

const exitNow = () => process.exit(1);

export function installEarlySignalExit(): void {
  for (const s of SIGNALS) process.on(s, exitNow);
}

/** The run's own handlers take over (they forward the signal to the children first). */
export function releaseEarlySignalExit(): void {
  for (const s of SIGNALS) process.off(s, exitNow);
}
