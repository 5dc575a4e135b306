import { jsonOf } from "../test/support/compute.ts";
import { installNeonStub } from "../test/support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../test/support/pg.ts";
import { cleanup } from "../test/support/proc.ts";
import { psql, start, terminate, waitStatus } from "../test/support/started.ts";
import { table } from "./_util.ts";

const ROLES = Number(process.env.BENCH_ROLES ?? 1000);
const DBS = Number(process.env.BENCH_DBS ?? 200);

const md5 = (password: string, user: string) =>
  new Bun.CryptoHasher("md5").update(password + user).digest("hex");
const roles = Array.from({ length: ROLES }, (_, i) => ({
  name: `role ${i}`,
  encrypted_password: md5(`pw${i}`, `role ${i}`),
}));
const databases = Array.from({ length: DBS }, (_, i) => ({ name: `db ${i}`, owner: `role ${i}` }));

const ident = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** The floor's script: the privileged role, then one statement per role and per database. */
function floorScript(): string {
  const lines = [
    "CREATE ROLE neon_superuser CREATEDB CREATEROLE NOLOGIN REPLICATION BYPASSRLS IN ROLE pg_read_all_data, pg_write_all_data;",
  ];
  for (const r of roles) {
    lines.push(
      `CREATE ROLE ${ident(r.name)} LOGIN PASSWORD 'md5${r.encrypted_password}' IN ROLE neon_superuser;`,
    );
  }
  for (const d of databases)
    lines.push(`CREATE DATABASE ${ident(d.name)} OWNER ${ident(d.owner)};`);
  return `${lines.join("\n")}\n`;
}

async function psqlScript(pg: TestPostgres, text: string): Promise<number> {
  return (await pg.psqlScript(text)).ms;
}

interface ComputeRound {
  /** config_ms of the first start. */
  configMs: number;
  /** POST /configure with the same spec right after `running` (the start's background scan of
   * every database's extensions still runs beside it). */
  againMs: number;
  /** The same once that scan has finished. */
  quietMs: number;
}

async function reapply(s: Awaited<ReturnType<typeof start>>): Promise<number> {
  const body = JSON.stringify({ spec: s.stack.spec, compute_ctl_config: { jwks: { keys: [] } } });
  const t0 = performance.now();
  const r = await s.compute.post("/configure", s.token, {
    headers: { "content-type": "application/json" },
    body,
  });
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`/configure answered ${r.status}: ${await r.text()}`);
  return ms;
}

/** One compute: its first start, then /configure with the unchanged spec, twice. */
async function computeRound(): Promise<ComputeRound> {
  const s = await start({ skipCatalogUpdates: false, roles, databases });
  await waitStatus(s, "running", 600_000);
  const timings = await jsonOf(s.compute.get("/metrics.json", s.token));
  const configMs = Number(timings.config_ms);
  const made = await psql(
    s,
    "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'role %') || ' ' || (SELECT count(*) FROM pg_database WHERE datname LIKE 'db %')",
  );
  if (made !== `${ROLES} ${DBS}`) throw new Error(`the compute has roles/databases ${made}`);

  // The same spec again: every role and database exists, so only the guarded work remains.
  const againMs = await reapply(s);
  const deadline = performance.now() + 120_000;
  while (!s.compute.stderr.text.includes("[NEON_EXT_STAT]")) {
    if (performance.now() > deadline)
      throw new Error("the installed-extensions scan never finished");
    await Bun.sleep(100);
  }
  const quietMs = await reapply(s);
  await terminate(s, "immediate");
  await s.compute.exited;
  await s.stack.stop();
  return { configMs, againMs, quietMs };
}

async function floorRound(): Promise<number> {
  const floorPg = await startTestPostgres();
  try {
    return await psqlScript(floorPg, floorScript());
  } finally {
    await floorPg.stop();
  }
}

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
const mid = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

try {
  const stub = installNeonStub();
  if (!stub.installed) throw new Error(stub.reason);

  // Alternating, a floor before and after every compute; each compute is compared with the
  // mean of its two floors, and the medians of the per-round ratios are printed.
  const floors: number[] = [await floorRound()];
  const rounds: ComputeRound[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    rounds.push(await computeRound());
    floors.push(await floorRound());
  }
  const floorOf = (i: number) => (floors[i]! + floors[i + 1]!) / 2;
  const first = mid(rounds.map((r, i) => r.configMs / floorOf(i)));
  const again = mid(rounds.map((r) => r.againMs / r.configMs));
  const quiet = mid(rounds.map((r) => r.quietMs / r.configMs));

  const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(
    `${ROLES} roles, ${DBS} databases; first start through the compiled binary and the local stack; ${ROUNDS} round(s), a floor before and after each; medians of the per-round ratios; loadavg ${load}`,
  );
  table([
    ["measure", "ms (median)", "ratio", "of", "goal"],
    [
      "first apply: config_ms (/metrics.json)",
      mid(rounds.map((r) => r.configMs)),
      first,
      "floor",
      "<= 1.2 (<= 1.10 on the dev machine)",
    ],
    [
      "re-apply: POST /configure, same spec, once the start's extension scan is done",
      mid(rounds.map((r) => r.quietMs)),
      quiet,
      "first apply",
      "<= 0.25",
    ],
    [
      "re-apply right at running (the extension scan of every database beside it)",
      mid(rounds.map((r) => r.againMs)),
      again,
      "first apply",
      "",
    ],
    ["floor: one psql session", mid(floors), "", "", ""],
  ]);
  console.log(
    `per round: floors ${floors.map((f) => f.toFixed(0)).join(", ")} ms; first applies ${rounds.map((r) => r.configMs.toFixed(0)).join(", ")} ms; re-applies ${rounds.map((r) => `${r.againMs.toFixed(0)}/${r.quietMs.toFixed(0)}`).join(", ")} ms (at running/quiet); reconfigure_concurrency 1`,
  );
  console.log(
    "floor: CREATE ROLE … IN ROLE neon_superuser and CREATE DATABASE … OWNER through one psql session on a fresh test Postgres",
  );
} finally {
  await cleanup();
}
// Test-support servers (the fake storage peers) would otherwise keep the event loop alive.
process.exit(0);
