// Kills at seeded random moments over the whole start (config read, safekeepers, a slowed
// basebackup, Postgres starting, spec apply, migrations) and during a reconfigure, the first
// 100 ms after exec included: SIGTERM, SIGINT and SIGKILL of compute_ctl, and SIGKILL of the
// postmaster. Each time: compute_ctl exits within 15 s (1 after a SIGTERM/SIGINT; after a
// postmaster kill non-zero, and 1 before `running`), nothing of the run is left 12 s after the
// kill (no process whose cwd, environment or cmdline names PGDATA, and none of compute_ctl's
// descendants at the kill), and the next start on the same PGDATA path reaches `running`.
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

/** A coarse name for where the start was, from compute_ctl's log so far. */
function phaseOf(log: string, status: string): string {
  if (status === "running") return "running/reconfigure";
  const marks: [RegExp, string][] = [
    [/migration/i, "migrations"],
    [/apply|CreateAndAlter|phase /i, "spec apply"],
    [
      /starting postgres|postgres started|waiting for postgres|Postgres.*start/i,
      "postgres starting",
    ],
    [/basebackup/i, "basebackup"],
    [/safekeeper|sync/i, "safekeepers"],
  ];
  let best = "config read";
  let at = -1;
  for (const [re, name] of marks) {
    const m = [...log.matchAll(new RegExp(re.source, "gi"))].pop();
    if (m && (m.index ?? -1) > at) {
      at = m.index ?? -1;
      best = name;
    }
  }
  return best;
}

const ROLES = [{ name: "app" }, { name: "odd\t\x01name" }];
const DATABASES = [{ name: "appdb", owner: "app" }];

describe(`kills at random moments (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const plan = Array.from({ length: MOMENTS }, (_, i) => ({
    target: TARGETS[i % TARGETS.length] as Target,
    // One in five inside the first 100 ms after exec.
    atMs: rng.chance(0.2) ? rng.int(0, 100) : rng.int(0, HORIZON_MS),
  }));
  const phases: Record<string, number> = {};
  afterAll(() => console.log(`kills by phase: ${JSON.stringify(phases)}`));

  for (const [i, { target, atMs }] of plan.entries()) {
    test(`moment ${i}: ${target} at ${atMs} ms`, async () => {
      const s = await start({
        safekeepers: "agree",
        skipCatalogUpdates: false,
        roles: ROLES,
        databases: DATABASES,
        pageserverFaults: { chunkSize: 65536, chunkDelayMs: 30 },
        startDelayMs: 500,
        // No readiness wait: moments from 0 ms must land before the HTTP server is up.
        waitReady: false,
      }).catch((err) => {
        throw new Error(`moment ${i}: the start itself failed: ${err.message}`);
      });
      await killAt(s, i, target, atMs, phases);
    });
  }
});

async function killAt(
  s: Started,
  i: number,
  target: Target,
  atMs: number,
  phases: Record<string, number>,
): Promise<void> {
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
  const wait = atMs - (performance.now() - spawnedAt);
  if (wait > 0) await Bun.sleep(wait);
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
  const phase = phaseOf(s.compute.stderr.text, statusAtKill);
  phases[phase] = (phases[phase] ?? 0) + 1;
  const before = tree(pid);
  const killedAt = performance.now();
  process.kill(victim, target === "postmaster" ? "SIGKILL" : target);
  const where = `moment ${i} (COMPUTE_CTL_TEST_SEED=${SEED}): ${target} at ${Math.round(killedAt - spawnedAt)} ms, in ${phase}`;

  const code = await Promise.race([
    s.compute.exited,
    Bun.sleep(15_000).then(() => "timeout" as const),
  ]);
  const log = () => s.compute.stderr.text.slice(-3000);
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
    phases["before any JavaScript (ended by the signal)"] =
      (phases["before any JavaScript (ended by the signal)"] ?? 0) + 1;
  } else expect(code, `${where}\n${log()}`).toBe(1);
  await watcher;
  console.log(
    `${where}: exit ${code ?? s.compute.proc.signalCode} after ${Math.round(performance.now() - killedAt)} ms`,
  );

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
}
