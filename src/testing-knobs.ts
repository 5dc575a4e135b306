// The one place compute_ctl reads its environment. The testing knobs (COMPUTE_CTL_TESTING_*) are
// read once at start: each shortens a reference delay so the test suite fits CI, and unset, every
// value is the reference's (documented in README.md). The variables the platform sets are read
// when asked (`environment` below). A new environment variable is read here and passed on as a
// value; nothing else under src/ touches process.env.

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
  /** GET /testing/memory on the internal server: memory after a full GC (off). */
  memoryProbe: process.env.COMPUTE_CTL_TESTING_MEMORY_PROBE === "1",
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

/** Bounds on Neon's storage peers where the reference waits without end. */
export const peerKnobs = {
  /** Bound on one basebackup attempt, connect to last byte (10 min; the reference has none). */
  basebackupTimeoutMs: ms("COMPUTE_CTL_TESTING_BASEBACKUP_TIMEOUT_MS", 600_000),
  /** Bound on one endpoint storage request, body included (60 s; the reference has none). */
  endpointStorageTimeoutMs: ms("COMPUTE_CTL_TESTING_ENDPOINT_STORAGE_TIMEOUT_MS", 60_000),
};

/**
 * COMPUTE_CTL_TESTING_HOST_ROOT: a directory under which fixed host paths are taken instead of
 * `/` (see util/host.ts). Unset or empty: the real host.
 */
export const hostRoot: string | undefined = process.env.COMPUTE_CTL_TESTING_HOST_ROOT || undefined;

/**
 * The variables the platform (or a test) sets, each read when asked, so a change made while the
 * process runs is seen.
 */
export const environment = {
  /**
   * AUTOSCALING: set (to anything, even empty) by the control plane on autoscaling VMs. Postgres
   * then runs under cgexec in the cgroup the vm-monitor resizes, and the vm-monitor runs once
   * the compute is running.
   */
  autoscaling: (): boolean => process.env.AUTOSCALING !== undefined,
  /** INSTANCE_ID: set (even empty): the external server accepts every request without a JWT. */
  instanceIdSet: (): boolean => process.env.INSTANCE_ID !== undefined,
  /** INSTANCE_ID's value (Hadron): lakebase names the instance in metrics, logs and Postgres's env. */
  instanceId: (): string | null => process.env.INSTANCE_ID ?? null,
  /** COMPUTE_CTL_LOG_DIRECTORY: lakebase mode's daily JSON log files go there (unset: none). */
  logDirectory: (): string | null => process.env.COMPUTE_CTL_LOG_DIRECTORY || null,
  /** NEON_CONTROL_PLANE_TOKEN: the bearer token of `-p`'s config request. */
  controlPlaneToken: (): string | undefined => process.env.NEON_CONTROL_PLANE_TOKEN,
  /** NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: the basebackup's retry count, as given. */
  basebackupRetries: (): string | undefined => process.env.NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES,
  /** COMPUTE_CTL_TESTING (the testing switch) and FAILPOINTS, for the failpoints at start. */
  failpoints: (): Record<string, string | undefined> => ({
    COMPUTE_CTL_TESTING: process.env.COMPUTE_CTL_TESTING,
    FAILPOINTS: process.env.FAILPOINTS,
  }),
  /** RUST_LOG: the log level filter of the standalone vm-monitor. */
  rustLog: (): string | undefined => process.env.RUST_LOG,
  /**
   * COMPUTE_CTL_INTERNAL_ROLE: set by compute_ctl on a child process of its own executable to
   * name the helper it is (`basebackup`); never set by an operator.
   */
  internalRole: (): string | undefined => process.env.COMPUTE_CTL_INTERNAL_ROLE,
  /** PATH, where a bare --pgbin is looked up. */
  path: (): string | undefined => process.env.PATH,
  /** USER, the OS user name when the system cannot say it. */
  user: (): string | undefined => process.env.USER,
  /**
   * The whole environment: the command line's env fallbacks (as clap's `env`), and what the
   * children compute_ctl starts inherit.
   */
  all: (): Record<string, string | undefined> => process.env,
};

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
 * collectors. The last three are read once, at start.
 */
export const hostEnv = {
  get autoscaling(): boolean {
    return environment.autoscaling();
  },
  pgbouncerPassword: process.env.PGBOUNCER_PASSWORD ?? null,
  auditEndpoint: process.env.AUDIT_LOGGING_ENDPOINT ?? "",
  auditTlsEndpoint: process.env.AUDIT_LOGGING_TLS_ENDPOINT ?? "",
};

/**
 * Not testing knobs: the OpenTelemetry variables compute_ctl honours (read once, at start).
 */
export const serviceEnv = {
  OTEL_SDK_DISABLED: process.env.OTEL_SDK_DISABLED,
  OTEL_EXPORTER_OTLP_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_ENDPOINT,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
  OTEL_BSP_SCHEDULE_DELAY: process.env.OTEL_BSP_SCHEDULE_DELAY,
  TRACEPARENT: process.env.TRACEPARENT,
  TRACESTATE: process.env.TRACESTATE,
};

/**
 * NOTIFY_SOCKET (systemd's Type=notify socket), taken out of the environment: the children
 * inherit compute_ctl's environment, and a Postgres built with systemd support would otherwise
 * report READY=1 itself, before the compute is running.
 */
export function takeNotifySocket(): string | undefined {
  const address = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  return address;
}
