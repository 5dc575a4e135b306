// Kills at seeded random moments over the whole start (config read, safekeepers, a slowed
// basebackup, Postgres starting, spec apply, migrations) and during a reconfigure, the first
// 100 ms after exec included: SIGTERM, SIGINT and SIGKILL of compute_ctl, and SIGKILL of the
// postmaster. Each time: compute_ctl exits within 15 s (1 after a SIGTERM/SIGINT; after a
// postmaster kill non-zero, and 1 before `running`), nothing of the run is left 12 s after the
// kill (no process whose cwd, environment or cmdline names PGDATA, and none of compute_ctl's
// descendants at the kill), and the next start on the same PGDATA path reaches `running`.
//
// Half the moments are times after exec; the other half wait for a phase's first log line (the
// start's debug marks, RUST_LOG=debug) and then a seeded delay within it, cycling through the
// phases, so every phase is hit however the machine's speed moves them. The basebackup streams
// in 64 KiB chunks 30 ms apart (~2.5 s), so a moment anchored there lands mid-stream, and the
// test checks that it did. Each moment is labelled afterwards from the log: the last phase mark
// timestamped before the kill.
// COMPUTE_CTL_TEST_SEED replays a run; COMPUTE_CTL_TEST_KILL_MOMENTS sets the count.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { jsonOf, startCompute } from "../support/compute.ts";
import { campaignSeed, knob, Rng } from "../support/fuzz.ts";
import { jwks } from "../support/jwt.ts";
import { processesUsing } from "../support/leftovers.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { FAST, type Started, start, waitStatus } from "../support/started.ts";

const SEED = campaignSeed();
const MOMENTS = knob("COMPUTE_CTL_TEST_KILL_MOMENTS", 6);
console.log(`kills: seed ${SEED} (COMPUTE_CTL_TEST_SEED=${SEED}), ${MOMENTS} moments`);

setDefaultTimeout(90_000);
afterAll(cleanup);

type Target = "SIGTERM" | "SIGINT" | "SIGKILL" | "postmaster";
const TARGETS: Target[] = ["SIGTERM", "SIGINT", "SIGKILL", "postmaster"];
/**
 * With the basebackup slowed to about 2.5 s and Postgres's exec delayed, the start reaches
 * `running` after about 4-5 s here; moments spread a little past it, into the reconfigure.
 */
const HORIZON_MS = 6000;

interface Proc {
  pid: number;
  start: string;
}

function procStat(pid: number): { ppid: number; start: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") return null;
    return { ppid: Number(fields[1]), start: fields[19] ?? "" };
  } catch {
    return null;
  }
}

/** compute_ctl and every live descendant, each with its start time (pids get reused). */
function tree(root: number): Proc[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: Proc[] = [];
  const walk = (pid: number) => {
    const st = procStat(pid);
    if (st) out.push({ pid, start: st.start });
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

const alive = (procs: Proc[]) => procs.filter((p) => procStat(p.pid)?.start === p.start);

function postmasterPid(pgdata: string): number | null {
  try {
    const pid = Number(readFileSync(join(pgdata, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 && procStat(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Log lines that begin a phase, in start order: the phase a moment falls in is the last one seen. */
const PHASE_MARKS: [RegExp, string][] = [
  [/DEBUG start phase runtime_started/, "config read"],
  [/DEBUG start phase config_read/, "preparing PGDATA"],
  [/DEBUG start phase conf_written/, "safekeepers"],
  [/DEBUG start phase lsn_selected/, "basebackup connecting"],
  [/DEBUG start phase basebackup_first_byte/, "basebackup mid-stream"],
  [/DEBUG start phase basebackup_last_byte/, "basebackup unpacked, PGDATA fix-up"],
  [/INFO started postgres /, "postgres starting"],
  [/INFO PostgreSQL is now running/, "spec apply"],
  [/INFO applied the spec/, "after the apply"],
  [/INFO Changing compute status from init to running/, "running"],
  [/INFO Changing compute status from running to configuration-pending/, "reconfigure"],
  [/INFO Changing compute status from configuration to running/, "running after reconfigure"],
];
const MIGRATION_EVENT =
  /INFO (handle migrations|Running migration id=|Skipping migration id=|Finished migration id=)/;
const BEFORE_ANY_LOG = "exec, before any log line";

/** Wall-clock ms of a log line (`2026-12-07T09:00:52.790391Z …`), or NaN. */
function lineTime(line: string): number {
  const t = Date.parse(`${line.slice(0, 23)}Z`);
  return Number.isNaN(t) ? t : t + Number(line.slice(23, 26)) / 1000;
}

/**
 * The phase at wall-clock time `at`, from compute_ctl's whole log: the last phase mark at or before
 * it, or "migrations" while they ran (a migration event after `at`, or the last one before `at`
 * not yet followed by its Finished line).
 */
function phaseAt(log: string, at: number): string {
  let phase = BEFORE_ANY_LOG;
  let lastMigration: string | null = null;
  let migrationAfter = false;
  for (const line of log.split("\n")) {
    const t = lineTime(line);
    if (Number.isNaN(t)) continue;
    const m = MIGRATION_EVENT.exec(line);
    if (t > at) {
      if (m && lastMigration !== null) migrationAfter = true;
      continue;
    }
    if (m) lastMigration = m[1] as string;
    for (const [re, name] of PHASE_MARKS) if (re.test(line)) phase = name;
  }
  const migrating =
    lastMigration !== null && (migrationAfter || !lastMigration.startsWith("Finished"));
  return migrating && phase !== "reconfigure" ? "migrations" : phase;
}

/** Phases a moment can be anchored to: the mark it waits for and how long it may wait after it. */
const ANCHORS: { phase: string; mark: RegExp; maxDelayMs: number; beforePostgres: boolean }[] = [
  {
    phase: "basebackup mid-stream",
    mark: /DEBUG start phase basebackup_first_byte/,
    maxDelayMs: 1000,
    beforePostgres: true,
  },
  {
    phase: "postgres starting",
    mark: /INFO started postgres /,
    maxDelayMs: 400,
    beforePostgres: false,
  },
  {
    phase: "spec apply",
    mark: /INFO PostgreSQL is now running/,
    maxDelayMs: 300,
    beforePostgres: false,
  },
  { phase: "migrations", mark: /INFO handle migrations/, maxDelayMs: 100, beforePostgres: false },
  {
    phase: "reconfigure",
    mark: /INFO Changing compute status from running to configuration-pending/,
    maxDelayMs: 150,
    beforePostgres: false,
  },
  {
    phase: "safekeepers",
    mark: /DEBUG start phase conf_written/,
    maxDelayMs: 5,
    beforePostgres: true,
  },
  {
    phase: "config read",
    mark: /DEBUG start phase runtime_started/,
    maxDelayMs: 40,
    beforePostgres: true,
  },
];
const SIGNALS: Target[] = ["SIGTERM", "SIGINT", "SIGKILL"];

interface Moment {
  target: Target;
  /** ms after exec, or after the anchor's mark. */
  atMs: number;
  anchor: (typeof ANCHORS)[number] | null;
}

/** Even moments: a time after exec; odd ones: anchored to the phases in turn. */
function planMoments(rng: Rng, count: number): Moment[] {
  return Array.from({ length: count }, (_, i) => {
    if (i % 2 === 0) {
      return {
        target: TARGETS[(i / 2) % TARGETS.length] as Target,
        // One in five inside the first 100 ms after exec.
        atMs: rng.chance(0.2) ? rng.int(0, 100) : rng.int(0, HORIZON_MS),
        anchor: null,
      };
    }
    const k = (i - 1) / 2;
    const anchor = ANCHORS[k % ANCHORS.length] as (typeof ANCHORS)[number];
    // A postmaster kill waits for the postmaster: anchored before it, compute_ctl gets a signal.
    const target = anchor.beforePostgres
      ? (SIGNALS[k % SIGNALS.length] as Target)
      : (TARGETS[(k + 1) % TARGETS.length] as Target);
    return { target, atMs: rng.int(0, anchor.maxDelayMs), anchor };
  });
}

interface Outcome {
  target: Target;
  phase: string;
  exitMs: number;
}

const ROLES = [{ name: "app" }, { name: "odd\t\x01name" }];
const DATABASES = [{ name: "appdb", owner: "app" }];

describe(`kills at random moments (seed ${SEED})`, () => {
  const plan = planMoments(new Rng(SEED), MOMENTS);
  const outcomes: Outcome[] = [];
  afterAll(() => summarize(outcomes));

  for (const [i, moment] of plan.entries()) {
    const when = moment.anchor
      ? `${moment.atMs} ms into ${moment.anchor.phase}`
      : `${moment.atMs} ms after exec`;
    test(`moment ${i}: ${moment.target} at ${when}`, async () => {
      const s = await start({
        safekeepers: "agree",
        skipCatalogUpdates: false,
        roles: ROLES,
        databases: DATABASES,
        pageserverFaults: { chunkSize: 65536, chunkDelayMs: 30 },
        startDelayMs: 500,
        // The start's phase marks are debug lines.
        env: { RUST_LOG: "debug" },
        // No readiness wait: moments from 0 ms must land before the HTTP server is up.
        waitReady: false,
      }).catch((err) => {
        throw new Error(`moment ${i}: the start itself failed: ${err.message}`);
      });
      outcomes.push(await killAt(s, i, moment));
    });
  }
});

function summarize(outcomes: Outcome[]): void {
  const count = (key: (o: Outcome) => string) => {
    const out: Record<string, number> = {};
    for (const o of outcomes) out[key(o)] = (out[key(o)] ?? 0) + 1;
    return out;
  };
  const slowest = outcomes.reduce<Outcome | null>(
    (a, o) => (a && a.exitMs >= o.exitMs ? a : o),
    null,
  );
  console.log(`kills by signal: ${JSON.stringify(count((o) => o.target))}`);
  console.log(`kills by phase: ${JSON.stringify(count((o) => o.phase))}`);
  if (slowest) {
    console.log(
      `slowest exit: ${slowest.exitMs} ms (${slowest.target} in ${slowest.phase}); ${outcomes.length} moments passed`,
    );
  }
}

async function killAt(s: Started, i: number, moment: Moment): Promise<Outcome> {
  const { target, atMs, anchor } = moment;
  const pid = s.compute.proc.pid;
  const spawnedAt = s.compute.spawnedAt;
  let status = "init";
  // Once running, reconfigure with more roles, so that later moments land in an apply.
  const watcher = (async () => {
    for (;;) {
      if (s.compute.proc.exitCode !== null || s.compute.proc.signalCode !== null) return;
      const st = await jsonOf(s.compute.get("/status", s.token)).catch(() => null);
      if (!st) {
        await Bun.sleep(20);
        continue;
      }
      status = st.status;
      if (status === "running") {
        await s.compute
          .post("/configure", s.token, {
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              spec: {
                ...s.stack.spec,
                cluster: {
                  ...(s.stack.spec.cluster as object),
                  roles: [...ROLES, { name: "later" }, { name: "later2" }],
                  databases: [...DATABASES, { name: "laterdb", owner: "later" }],
                },
              },
              compute_ctl_config: { jwks: { keys: [] } },
            }),
          })
          .catch(() => null);
        return;
      }
      await Bun.sleep(50);
    }
  })();
  if (anchor) {
    await waitFor(() => anchor.mark.test(s.compute.stderr.text), {
      what: `the first log line of ${anchor.phase}`,
      timeoutMs: 45_000,
      intervalMs: 2,
    }).catch((err) => {
      throw new Error(`moment ${i}: ${err.message}\n${s.compute.stderr.text.slice(-3000)}`);
    });
    if (atMs > 0) await Bun.sleep(atMs);
  } else {
    const wait = atMs - (performance.now() - spawnedAt);
    if (wait > 0) await Bun.sleep(wait);
  }
  let victim = pid;
  if (target === "postmaster") {
    // Before Postgres exists there is no postmaster to kill: the moment moves to its birth.
    const pm = await waitFor(() => postmasterPid(s.stack.pgdata) ?? undefined, {
      what: "a postmaster to kill",
      timeoutMs: 30_000,
    });
    victim = pm;
  }
  const statusAtKill = status;
  const before = tree(pid);
  const killedAt = performance.now();
  const killedAtWall = Date.now();
  process.kill(victim, target === "postmaster" ? "SIGKILL" : target);
  let where = `moment ${i} (COMPUTE_CTL_TEST_SEED=${SEED}): ${target} at ${Math.round(killedAt - spawnedAt)} ms`;

  const code = await Promise.race([
    s.compute.exited,
    Bun.sleep(15_000).then(() => "timeout" as const),
  ]);
  const exitMs = Math.round(performance.now() - killedAt);
  // The whole log (its pipe drained) says which phase the kill fell in.
  await Promise.race([s.compute.stderr.done, Bun.sleep(2_000)]);
  let phase = phaseAt(s.compute.stderr.text, killedAtWall);
  where += `, in ${phase}`;
  const log = () => s.compute.stderr.text.slice(-3000);
  if (anchor?.phase === "basebackup mid-stream") {
    expect(phase, `${where}: anchored mid-stream\n${log()}`).toBe("basebackup mid-stream");
  }
  expect(code, `${where}: compute_ctl still running 15 s after the kill\n${log()}`).not.toBe(
    "timeout",
  );
  if (target === "SIGKILL") expect(s.compute.proc.signalCode, where).toBe("SIGKILL");
  else if (target === "postmaster") {
    expect(code, `${where}\n${log()}`).not.toBe(0);
    if (statusAtKill !== "running") expect(code, `${where}\n${log()}`).toBe(1);
  } else if (
    s.compute.proc.signalCode === target &&
    s.compute.stderr.text === "" &&
    killedAt - spawnedAt < 100
  ) {
    // Bun was still initialising: no JavaScript had run (nothing logged), so no handler could be
    // installed yet. Documented; test/e2e/early-signals.test.ts measures that window.
    phase = "before any JavaScript (ended by the signal)";
  } else expect(code, `${where}\n${log()}`).toBe(1);
  await watcher;
  console.log(`${where}: exit ${code ?? s.compute.proc.signalCode} after ${exitMs} ms`);
  if (exitMs > 3_000) {
    // Slow: what compute_ctl did between the kill and its exit.
    const after = s.compute.stderr.text
      .split("\n")
      .filter((l) => lineTime(l) >= killedAtWall && !/ INFO request\{/.test(l));
    console.log(`${where}: log after the kill:\n${after.join("\n").slice(-4000)}`);
  }

  await waitFor(() => processesUsing(s.stack.pgdata).length === 0 && alive(before).length === 0, {
    what: "nothing of the run left",
    timeoutMs: Math.max(1, 12_000 - (performance.now() - killedAt)),
  }).catch(() => {
    throw new Error(
      `${where}: left 12 s after the kill: ${JSON.stringify([...processesUsing(s.stack.pgdata), ...alive(before)])}`,
    );
  });

  // The next start on the same PGDATA path.
  const again = await startCompute({
    config: { spec: s.stack.spec, compute_ctl_config: { jwks: jwks(s.key) } },
    connstr: s.stack.connstr,
    pgbin: s.stack.pgbin.pgbin,
    pgdata: s.stack.pgdata,
    env: FAST,
  });
  const next: Started = {
    ...s,
    compute: again,
    token: await s.key.sign({ compute_id: again.computeId }),
  };
  await waitStatus(next, "running", 45_000).catch((err) => {
    throw new Error(
      `${where}: the next start failed: ${err.message}\n${again.stderr.text.slice(-3000)}`,
    );
  });
  again.proc.kill("SIGTERM");
  expect(await again.exited).toBe(1);
  await waitFor(() => processesUsing(s.stack.pgdata).length === 0, {
    what: "the second run's processes gone",
    timeoutMs: 15_000,
  });
  await s.stack.stop();
  expect(existsSync(s.stack.pgdata)).toBe(true);
  return { target, phase, exitMs };
}
