// The compiled `compute_ctl vm-monitor` for e2e tests: its own port, a fake host root, stderr
// collected, and a way to wait until it listens.
import type { Subprocess } from "bun";
import { compiledBinary } from "./binary.ts";
import { freePort } from "./ports.ts";
import { collectStream, type StreamBuffer, spawnAs, waitForLine } from "./proc.ts";

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
  await waitForLine(stderr, /server bound/, 15_000);
  return {
    proc,
    port,
    url: `ws://127.0.0.1:${port}/monitor`,
    stderr,
    exited: proc.exited.then(() => proc.exitCode),
  };
}
