// The compiled `compute_ctl vm-monitor` for e2e tests: its own port, a fake host root, stderr
// collected, and a way to wait until it listens.
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type FakeCgroupHost, makeFakeCgroupHost } from "../fakes/autoscaler-agent.ts";
import { compiledBinary } from "./binary.ts";
import { startCompute } from "./compute.ts";
import { ed25519Key, jwks } from "./jwt.ts";
import { freePort } from "./ports.ts";
import { collectStream, makeUserDir, type StreamBuffer, spawnAs, waitFor } from "./proc.ts";
import { type StackOptions, startLocalStack } from "./stack.ts";
import { FAST, type Started } from "./started.ts";

const GiB = 1024 ** 3;

export interface StandaloneMonitor {
  proc: Subprocess;
  url: string;
  port: number;
  stderr: StreamBuffer;
  exited: Promise<number | null>;
}

export async function startStandaloneMonitor(opts: {
  hostRoot: string;
  args?: string[];
  env?: Record<string, string>;
}): Promise<StandaloneMonitor> {
  const bin = await compiledBinary();
  const port = await freePort();
  const proc = spawnAs([bin, "vm-monitor", "--addr", `127.0.0.1:${port}`, ...(opts.args ?? [])], {
    env: { COMPUTE_CTL_TESTING_HOST_ROOT: opts.hostRoot, RUST_LOG: "debug", ...opts.env },
  });
  const stderr = collectStream(proc.stderr, { prefix: "[vm-monitor] " });
  collectStream(proc.stdout, { prefix: "[vm-monitor stdout] " });
  // Listening once any path answers (404 for all but /monitor); the log level may hide the line.
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  await waitFor(
    async () => {
      if (exited)
        throw new Error(`vm-monitor exited ${proc.exitCode}: ${stderr.text.slice(-2000)}`);
      return (await fetch(`http://127.0.0.1:${port}/`)).status === 404;
    },
    { what: "compute_ctl vm-monitor to listen", timeoutMs: 15_000 },
  );
  return {
    proc,
    port,
    url: `ws://127.0.0.1:${port}/monitor`,
    stderr,
    exited: proc.exited.then(() => proc.exitCode),
  };
}

export interface AutoscalingCompute extends Started {
  host: FakeCgroupHost;
  url: string;
  vmMonitorPort: number;
}

/** A `cgexec -g memory:neon-postgres CMD...` that checks its arguments and runs CMD. */
async function cgexecShimDir(): Promise<string> {
  const dir = await makeUserDir("cgexec-");
  const path = join(dir, "cgexec");
  writeFileSync(
    path,
    '#!/bin/sh\n[ "$1" = "-g" ] && [ "$2" = "memory:neon-postgres" ] || { echo "cgexec shim: unexpected $*" >&2; exit 64; }\nshift 2\nexec "$@"\n',
  );
  chmodSync(path, 0o755);
  return dir;
}

/**
 * A compute on the local stack with AUTOSCALING set: a fake cgroup host (MemTotal 1 GiB), a cgexec
 * shim first on PATH, the neon file-cache GUCs as placeholders (max 1GB) and --filecache-connstr
 * pointing at its Postgres.
 */
export async function startAutoscaling(opts: {
  spec?: Record<string, unknown>;
  autoscaling?: string;
  vmMonitorPort?: number;
  /** The basebackup template (e.g. stand-in SQL baked in); default the plain one. */
  template?: StackOptions["template"];
  /** More compute_ctl environment. */
  env?: Record<string, string>;
  /** Keep only about the last this many characters of compute_ctl's stderr. */
  stderrTailChars?: number;
}): Promise<AutoscalingCompute> {
  const stack = await startLocalStack({ spec: opts.spec, template: opts.template });
  // Placeholders for the neon extension's file-cache GUCs (the extension is not loaded here).
  const settings = (stack.spec.cluster as { settings: unknown[] }).settings;
  settings.push(
    { name: "neon.max_file_cache_size", value: "1GB", vartype: "string" },
    { name: "neon.file_cache_size_limit", value: "0", vartype: "string" },
  );
  const host = makeFakeCgroupHost(await makeUserDir("vmm-host-"), { memTotalBytes: GiB });
  const shims = await cgexecShimDir();
  const vmMonitorPort = opts.vmMonitorPort ?? (await freePort());
  const key = await ed25519Key();
  const compute = await startCompute({
    config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } },
    connstr: stack.connstr,
    pgbin: stack.pgbin.pgbin,
    pgdata: stack.pgdata,
    env: {
      ...FAST,
      AUTOSCALING: opts.autoscaling ?? "1",
      COMPUTE_CTL_TESTING_HOST_ROOT: host.root,
      PATH: `${shims}:${process.env.PATH}`,
      ...opts.env,
    },
    args: [
      "--vm-monitor-addr",
      `127.0.0.1:${vmMonitorPort}`,
      "--filecache-connstr",
      `host=127.0.0.1 port=${stack.pgPort} dbname=postgres user=cloud_admin sslmode=disable application_name=vm-monitor`,
    ],
    stderrTailChars: opts.stderrTailChars,
  });
  const token = await key.sign({ compute_id: compute.computeId });
  return {
    stack,
    compute,
    key,
    token,
    host,
    vmMonitorPort,
    url: `ws://127.0.0.1:${vmMonitorPort}/monitor`,
  };
}
