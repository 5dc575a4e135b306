// Testing-only timing knobs, read from the environment once. Each shortens a reference delay so
// the test suite fits CI; unset, every value is the reference's. Documented in README.md.

function ms(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

function factor(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export const knobs = {
  /** How long compute_ctl keeps serving HTTP after a failed start before it exits (30 s). */
  failedExitDelayMs: ms("COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS", 30_000),
  /** How long it lingers after a fast /terminate (30 s). */
  fastLingerMs: ms("COMPUTE_CTL_TESTING_FAST_LINGER_MS", 30_000),
  /** How long it lingers after an immediate /terminate (300 ms). */
  immediateLingerMs: ms("COMPUTE_CTL_TESTING_IMMEDIATE_LINGER_MS", 300),
  /** How long children get after a termination signal before SIGKILL (10 s). */
  childGraceMs: ms("COMPUTE_CTL_TESTING_CHILD_GRACE_MS", 10_000),
};

/** The Postgres process and sync-safekeepers knobs. */
export const pgKnobs = {
  /** How long to wait for postmaster.pid to say `ready` (60 s, as the reference). */
  pgReadyTimeoutMs: ms("COMPUTE_CTL_TESTING_PG_READY_TIMEOUT_MS", 60_000),
  /** Bound on one `postgres --sync-safekeepers` run (10 min; the reference has none). */
  syncSkTimeoutMs: ms("COMPUTE_CTL_TESTING_SYNC_SK_TIMEOUT_MS", 600_000),
  /** Multiplier on the sync-safekeepers retry backoff (1 = the reference's delays). */
  syncSkBackoffScale: factor("COMPUTE_CTL_TESTING_SYNC_SK_BACKOFF_SCALE", 1),
};

/**
 * COMPUTE_CTL_TESTING_HOST_ROOT: a directory under which fixed host paths are taken instead of
 * `/` (see util/host.ts). Unset or empty: the real host.
 */
export const hostRoot: string | undefined = process.env.COMPUTE_CTL_TESTING_HOST_ROOT || undefined;

/**
 * AUTOSCALING: set (to anything, even empty) by the control plane on autoscaling VMs. The
 * vm-monitor then runs once the compute is running.
 */
export const autoscaling: boolean = process.env.AUTOSCALING !== undefined;

/** The sidecar knobs: the pgbouncer admin console's port and the periodic sidecar tasks. */
export const sidecarKnobs = {
  /** The pgbouncer admin console's port (6432, as the image's pgbouncer.ini). */
  pgbouncerPort: ms("COMPUTE_CTL_TESTING_PGBOUNCER_PORT", 6432),
  /** How often the TLS certificate is re-hashed to notice a renewal (60 s). */
  tlsPollMs: ms("COMPUTE_CTL_TESTING_TLS_POLL_MS", 60_000),
  /** How often old pgaudit logs are deleted and the log directory measured (60 s). */
  auditGcMs: ms("COMPUTE_CTL_TESTING_AUDIT_GC_MS", 60_000),
};

/**
 * The environment the image gives compute_ctl for its neighbours: AUTOSCALING (a NeonVM: the
 * pgbouncer admin console over its Unix socket), PGBOUNCER_PASSWORD, and the compliance audit
 * collectors. Read once.
 */
export const hostEnv = {
  autoscaling,
  pgbouncerPassword: process.env.PGBOUNCER_PASSWORD ?? null,
  auditEndpoint: process.env.AUDIT_LOGGING_ENDPOINT ?? "",
  auditTlsEndpoint: process.env.AUDIT_LOGGING_TLS_ENDPOINT ?? "",
};
