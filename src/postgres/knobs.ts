// Testing-only knobs for the Postgres process and sync-safekeepers, read from the environment once
// (same pattern as src/testing-knobs.ts). Unset, every value is the production default.

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

export const pgKnobs = {
  /** How long to wait for postmaster.pid to say `ready` (60 s, as the reference). */
  pgReadyTimeoutMs: ms("COMPUTE_CTL_TESTING_PG_READY_TIMEOUT_MS", 60_000),
  /** Bound on one `postgres --sync-safekeepers` run (10 min; the reference has none). */
  syncSkTimeoutMs: ms("COMPUTE_CTL_TESTING_SYNC_SK_TIMEOUT_MS", 600_000),
  /** Multiplier on the sync-safekeepers retry backoff (1 = the reference's delays). */
  syncSkBackoffScale: factor("COMPUTE_CTL_TESTING_SYNC_SK_BACKOFF_SCALE", 1),
};
