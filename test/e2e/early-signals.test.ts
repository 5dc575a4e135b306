// SIGINT/SIGTERM at any moment after exec end compute_ctl with exit code 1, through the compiled
// binary. A signal that arrives while Bun itself is still initialising (before any JavaScript
// runs) ends any Bun program by the signal, so the 10-30 ms runs are compared with a floor
// measured in the same run: a compiled program whose first statement installs the handlers.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync } from "node:fs";
import { join } from "node:path";
import { compiledBinary } from "../support/binary.ts";
import { writeUserFile } from "../support/compute.ts";
import { freePort } from "../support/ports.ts";
import { cleanup, makeUserDir, spawnAs } from "../support/proc.ts";

setDefaultTimeout(300_000);
afterAll(cleanup);

type Outcome = "exit 1" | `exit ${number}` | `signal ${string}`;

async function buildFloor(dir: string): Promise<string> {
  const outfile = join(dir, "signal-floor");
  const r = await Bun.build({
    entrypoints: [join(import.meta.dir, "../support/signal-floor.ts")],
    target: "bun",
    compile: { outfile, autoloadDotenv: false, autoloadBunfig: false },
  });
  if (!r.success) throw new Error(r.logs.map((l) => l.message).join("\n"));
  chmodSync(outfile, 0o755);
  return outfile;
}

async function computeArgs(dir: string): Promise<string[]> {
  const config = join(dir, "config.json");
  await writeUserFile(
    config,
    JSON.stringify({ spec: null, compute_ctl_config: { jwks: { keys: [] } } }),
  );
  return [
    ...["-D", join(dir, "pgdata"), "-C", "postgresql://cloud_admin@127.0.0.1:1/postgres"],
    ...["-b", "/usr/lib/postgresql/15/bin/postgres", "--compute-id", "early-signals"],
    ...["--external-http-port", String(await freePort())],
    ...["--internal-http-port", String(await freePort()), "-c", config],
  ];
}

/** Spawns `cmd`, sends `signal` after `delayMs`, and reports how the process ended. */
async function signalAfter(cmd: string[], delayMs: number, signal: "SIGINT" | "SIGTERM") {
  const p = spawnAs(cmd, { stdout: "ignore", stderr: "ignore", detached: false });
  await Bun.sleep(delayMs);
  p.kill(signal);
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  await p.exited;
  clearTimeout(timer);
  return (p.signalCode ? `signal ${p.signalCode}` : `exit ${p.exitCode}`) as Outcome;
}

const tally = (xs: Outcome[]) =>
  xs.reduce<Record<string, number>>((m, x) => {
    m[x] = (m[x] ?? 0) + 1;
    return m;
  }, {});

describe("early termination signals", () => {
  test("60-250 ms after exec (compute_ctl still loading): always exit 1", async () => {
    const bin = await compiledBinary();
    const dir = await makeUserDir("early-sig-");
    const args = await computeArgs(dir);
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 16; i++) {
      const delay = 60 + Math.floor((190 * i) / 15);
      outcomes.push(await signalAfter([bin, ...args], delay, i % 2 ? "SIGTERM" : "SIGINT"));
    }
    expect(tally(outcomes)).toEqual({ "exit 1": 16 });
  });

  test("10-30 ms after exec: exit 1 unless Bun had not started JavaScript yet (floor)", async () => {
    const bin = await compiledBinary();
    const dir = await makeUserDir("early-sig-");
    const args = await computeArgs(dir);
    const floor = await buildFloor(dir);
    const ours: Outcome[] = [];
    const base: Outcome[] = [];
    const runs = 40;
    for (let i = 0; i < runs; i++) {
      const delay = 10 + (i % 21);
      const sig = i % 2 ? "SIGTERM" : "SIGINT";
      // Interleaved, so both see the same load.
      ours.push(await signalAfter([bin, ...args], delay, sig));
      base.push(await signalAfter([floor], delay, sig));
    }
    const bySignal = (xs: Outcome[]) => xs.filter((x) => x.startsWith("signal")).length;
    const summary = `compute_ctl ${JSON.stringify(tally(ours))}, floor ${JSON.stringify(tally(base))}`;
    console.log(`early signals at 10-30 ms: ${summary}`);
    // Nothing but exit 1 or death by the signal itself.
    for (const x of ours) expect(["exit 1", "signal SIGINT", "signal SIGTERM"]).toContain(x);
    // Before the handlers came first, every one of these runs ended by the signal.
    expect(bySignal(ours), summary).toBeLessThanOrEqual(bySignal(base) + Math.ceil(runs * 0.15));
    expect(ours.filter((x) => x === "exit 1").length, summary).toBeGreaterThan(runs / 2);
  });
});
