// A compiled compute_ctl running for an e2e test: its own directory, free ports, a config
// file, stderr collected, and helpers to call its two HTTP servers.
import { chownSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { compiledBinary } from "./binary.ts";
import { freePort } from "./ports.ts";
import { collectStream, makeUserDir, RUN_AS, type StreamBuffer, spawnAs, waitFor } from "./proc.ts";

export const PG_BINDIR = process.env.PG_BINDIR ?? "/usr/lib/postgresql/15/bin";
export const PGBIN = `${PG_BINDIR}/postgres`;
export const CONNSTR = "postgresql://cloud_admin@127.0.0.1:55432/postgres";

/** Knobs that shorten the reference's delays so a test can watch an exit. */
export const FAST_EXIT_ENV = {
  NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "0",
  COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS: "500",
  COMPUTE_CTL_TESTING_FAST_LINGER_MS: "500",
  COMPUTE_CTL_TESTING_IMMEDIATE_LINGER_MS: "300",
};

export interface StartOptions {
  /** Written to <dir>/config.json and passed with -c, unless `args` names the source itself. */
  config?: unknown;
  /** Extra or replacement arguments; `-c` is added only when `config` is given. */
  args?: string[];
  env?: Record<string, string | undefined>;
  computeId?: string;
  /** --connstr (default CONNSTR) and --pgbin (default the real Postgres 15). */
  connstr?: string;
  pgbin?: string;
  /** -D (default <dir>/pgdata). */
  pgdata?: string;
  /** Wait until the external server answers (default true). */
  waitReady?: boolean;
  /** Another compute_ctl executable than compiledBinary() (benchmarks compare builds). */
  binary?: string;
  /** Keep only about the last this many characters of stderr (long runs); default all. */
  stderrTailChars?: number;
}

export interface RunningCompute {
  proc: Subprocess;
  dir: string;
  computeId: string;
  externalPort: number;
  internalPort: number;
  external: string;
  internal: string;
  stderr: StreamBuffer;
  /** performance.now() right after the spawn. */
  spawnedAt: number;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  get(path: string, token?: string, init?: RequestInit): Promise<Response>;
  post(path: string, token?: string, init?: RequestInit): Promise<Response>;
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field in tests.
export type Json = any;

/** A response body as JSON, typed loosely for assertions. */
export async function jsonOf(r: Response | Promise<Response>): Promise<Json> {
  return (await r).json();
}

export async function writeUserFile(path: string, content: string): Promise<void> {
  await Bun.write(path, content);
  if (RUN_AS) chownSync(path, RUN_AS.uid, RUN_AS.gid);
}

export async function startCompute(opts: StartOptions = {}): Promise<RunningCompute> {
  const bin = opts.binary ?? (await compiledBinary());
  const dir = await makeUserDir("compute-");
  const computeId = opts.computeId ?? "compute-e2e";
  const externalPort = await freePort();
  const internalPort = await freePort();
  const args = [
    "-D",
    opts.pgdata ?? join(dir, "pgdata"),
    "-C",
    opts.connstr ?? CONNSTR,
    "-b",
    opts.pgbin ?? PGBIN,
    "--compute-id",
    computeId,
    "--external-http-port",
    String(externalPort),
    "--internal-http-port",
    String(internalPort),
  ];
  if (opts.config !== undefined) {
    const path = join(dir, "config.json");
    await writeUserFile(path, JSON.stringify(opts.config));
    args.push("-c", path);
  }
  args.push(...(opts.args ?? []));
  const proc = spawnAs([bin, ...args], {
    env: { OTEL_SDK_DISABLED: "true", ...opts.env },
  });
  const spawnedAt = performance.now();
  const stderr = collectStream(proc.stderr, {
    prefix: "[compute_ctl] ",
    tailChars: opts.stderrTailChars,
  });
  collectStream(proc.stdout, { prefix: "[compute_ctl stdout] " });
  const external = `http://127.0.0.1:${externalPort}`;
  const internal = `http://127.0.0.1:${internalPort}`;
  const call =
    (method: string) =>
    (path: string, token?: string, init: RequestInit = {}) => {
      const headers = new Headers(init.headers);
      if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
      const base = path.startsWith("internal:") ? internal : external;
      return fetch(base + path.replace(/^internal:/, ""), { method, ...init, headers });
    };
  const compute: RunningCompute = {
    proc,
    dir,
    computeId,
    externalPort,
    internalPort,
    external,
    internal,
    stderr,
    spawnedAt,
    exited: proc.exited.then(() => proc.exitCode),
    get: call("GET"),
    post: call("POST"),
  };
  if (opts.waitReady ?? true) {
    let exitedEarly = false;
    void proc.exited.then(() => {
      exitedEarly = true;
    });
    await waitFor(
      async () => {
        if (exitedEarly) {
          throw new Error(`compute_ctl exited with ${proc.exitCode}:\n${stderr.text.slice(-2000)}`);
        }
        const r = await fetch(`${external}/metrics`);
        return r.status === 200;
      },
      { what: "compute_ctl's external HTTP server", timeoutMs: 15_000 },
    );
  }
  return compute;
}

/** A ComputeConfig with `jwks` and no spec: an Empty compute waiting for /configure. */
export function emptyConfig(jwks: unknown) {
  return { spec: null, compute_ctl_config: { jwks } };
}

/** The minimal spec of the reference's termination tests. */
export function minimalSpec(overrides: Record<string, unknown> = {}) {
  return {
    format_version: 1.0,
    cluster: { roles: [], databases: [], postgresql_conf: "shared_preload_libraries='neon'" },
    tenant_id: "b0554b632bd4d547a63b86c3630317e8",
    timeline_id: "2414a61ffc94e428f14b5758fe308e13",
    pageserver_connstring: "postgres://no_user@localhost:64000",
    safekeeper_connstrings: ["localhost:5454"],
    mode: "Primary",
    skip_pg_catalog_updates: true,
    reconfigure_concurrency: 1,
    suspend_timeout_seconds: -1,
    ...overrides,
  };
}
