#!/usr/bin/env bun
// Records the profiles build.ts lays the executable's bytecode out by (build-profile/*.txt): the
// functions a compute uses, written by the executable itself when it runs with
// BUN_BYTECODE_ORDER_OUT. Two runs of this checkout's build, as the footprint benchmark and the
// control plane see a compute:
//   running.txt: a start on the local stack (fake pageserver and safekeepers, Postgres 15), the
//                control plane's /status and /metrics polls, BYTECODE_ORDER_IDLE_S (default 65)
//                seconds of idling (the monitor's iterations, the installed-extensions scan),
//                then /terminate.
//   empty.txt:   an Empty compute polled the same way for 10 s, then SIGTERM.
// Run it again after larger changes of what a start or an idle compute runs:
//   bun scripts/bytecode-order.ts && bun run build
// An out-of-date profile is still correct; it only keeps more bytecode pages resident.
// BYTECODE_ORDER_BINARY records from another build of compute_ctl than this checkout's, and
// BYTECODE_ORDER_OUT_DIR writes the profiles elsewhere than build-profile/.
import { chmodSync, copyFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { compiledBinaryInfo } from "../test/support/binary.ts";
import { emptyConfig, type RunningCompute, startCompute } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { cleanup, makeUserDir } from "../test/support/proc.ts";
import { start, terminate, waitStatus } from "../test/support/started.ts";

const OUT = process.env.BYTECODE_ORDER_OUT_DIR || resolve(import.meta.dir, "../build-profile");
const IDLE_MS = Number(process.env.BYTECODE_ORDER_IDLE_S ?? 65) * 1000;

/** The control plane's polls: /status with a token, /metrics without. */
async function poll(compute: RunningCompute, token: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await (await compute.get("/status", token)).text();
    await (await compute.get("/metrics")).text();
  }
}

async function idle(compute: RunningCompute, token: string, ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    await poll(compute, token, 1);
    await Bun.sleep(Math.min(1000, Math.max(0, until - performance.now())));
  }
}

try {
  const bin = process.env.BYTECODE_ORDER_BINARY || (await compiledBinaryInfo()).path;
  const dir = await makeUserDir("bytecode-order-");
  chmodSync(dir, 0o777);
  const key = await ed25519Key();
  mkdirSync(OUT, { recursive: true });

  const runningOut = join(dir, "running.txt");
  const running = await start({
    mode: "Primary",
    safekeepers: "agree",
    binary: bin,
    computeId: "bytecode-order-running",
    fast: false,
    env: { BUN_BYTECODE_ORDER_OUT: runningOut },
  });
  await waitStatus(running, "running", 60_000);
  await idle(running.compute, running.token, IDLE_MS);
  await terminate(running, "immediate");
  await running.compute.exited;
  await running.stack.stop();

  const emptyOut = join(dir, "empty.txt");
  const empty = await startCompute({
    binary: bin,
    config: emptyConfig(jwks(key)),
    computeId: "bytecode-order-empty",
    env: { BUN_BYTECODE_ORDER_OUT: emptyOut },
  });
  const emptyToken = await key.sign({ compute_id: empty.computeId });
  await idle(empty, emptyToken, 10_000);
  empty.proc.kill("SIGTERM");
  await empty.exited;

  for (const [name, from] of [
    ["running.txt", runningOut],
    ["empty.txt", emptyOut],
  ] as const) {
    copyFileSync(from, join(OUT, name));
    chmodSync(join(OUT, name), 0o644);
    const functions = (await Bun.file(from).text()).split("\n").length - 2;
    console.log(`${join(OUT, name)}: ${functions} functions`);
  }
} finally {
  await cleanup();
}
