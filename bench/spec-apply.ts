import { jsonOf } from "../test/support/compute.ts";
import { installNeonStub } from "../test/support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../test/support/pg.ts";
import { cleanup } from "../test/support/proc.ts";
import { psql, start, terminate, waitStatus } from "../test/support/started.ts";
import { median, table } from "./_util.ts";

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

/** One compute: config_ms of its first start, then the wall time of a /configure with the same spec. */
async function computeRound(): Promise<{ configMs: number; againMs: number }> {
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
  const body = JSON.stringify({ spec: s.stack.spec, compute_ctl_config: { jwks: { keys: [] } } });
  const t0 = performance.now();
  const r = await s.compute.post("/configure", s.token, {
    headers: { "content-type": "application/json" },
    body,
  });
  const againMs = performance.now() - t0;
  if (r.status !== 200) throw new Error(`/configure answered ${r.status}: ${await r.text()}`);
  await terminate(s, "immediate");
  await s.compute.exited;
  await s.stack.stop();
  return { configMs, againMs };
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

try {
  const stub = installNeonStub();
  if (!stub.installed) throw new Error(stub.reason);

  // Alternating, floor first and last, so load that comes and goes weighs on both sides.
  const floors: number[] = [await floorRound()];
  const computes: { configMs: number; againMs: number }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    computes.push(await computeRound());
    floors.push(await floorRound());
  }
  const floorMs = median(floors);
  const configMs = median(computes.map((c) => c.configMs));
  const againMs = median(computes.map((c) => c.againMs));

  console.log(
    `${ROLES} roles, ${DBS} databases; first start through the compiled binary and the local stack; ${ROUNDS} round(s), floor before and after each (medians); load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`,
  );
  table([
    ["measure", "ms", "vs", "ratio", "goal"],
    ["first start: config_ms (/metrics.json)", configMs, "floor", configMs / floorMs, "<= 1.2"],
    [
      "second apply: POST /configure, same spec (reconfigure_concurrency 1)",
      againMs,
      "first apply",
      againMs / configMs,
      "<= 0.25",
    ],
    ["floor (one psql session)", floorMs, "", "", ""],
  ]);
  console.log(
    `floors ms: ${floors.map((f) => f.toFixed(0)).join(", ")}; first applies ms: ${computes.map((c) => c.configMs.toFixed(0)).join(", ")}; second applies ms: ${computes.map((c) => c.againMs.toFixed(0)).join(", ")}`,
  );
  console.log(
    "floor: CREATE ROLE … IN ROLE neon_superuser and CREATE DATABASE … OWNER through one psql session on a fresh test Postgres",
  );
} finally {
  await cleanup();
}
// Test-support servers (the fake storage peers) would otherwise keep the event loop alive.
process.exit(0);
