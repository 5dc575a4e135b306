import { decode } from "../src/api/decode.ts";
import { ComputeSpec } from "../src/api/spec.ts";
import { applySpecSql, planSpecSql, startConcurrency } from "../src/spec/apply.ts";
import { installNeonStub } from "../test/support/neon-stub.ts";
import { startTestPostgres, type TestPostgres } from "../test/support/pg.ts";
import { cleanup } from "../test/support/proc.ts";
import { table } from "./_util.ts";

const ROLES = Number(process.env.BENCH_ROLES ?? 300);
const DBS = Number(process.env.BENCH_DBS ?? 100);
const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";

const spec = decode(ComputeSpec, {
  format_version: 1.0,
  suspend_timeout_seconds: -1,
  cluster: {
    roles: Array.from({ length: ROLES }, (_, i) => ({
      name: `role ${i}`,
      encrypted_password: new Bun.CryptoHasher("md5").update(`pw${i}role ${i}`).digest("hex"),
    })),
    databases: Array.from({ length: DBS }, (_, i) => ({ name: `db ${i}`, owner: `role ${i}` })),
  },
});

async function psqlScript(pg: TestPostgres, text: string): Promise<number> {
  return (await pg.psqlScript(text, { pgoptions: "-c search_path= -c statement_timeout=0" })).ms;
}

try {
  const stub = installNeonStub();
  if (!stub.installed) throw new Error(stub.reason);
  const [ours, floor] = await Promise.all([startTestPostgres(), startTestPostgres()]);
  const opts = (pg: TestPostgres) => ({
    connstr: new URL(pg.url),
    privilegedRoleName: "neon_superuser",
    timelineId: TIMELINE,
  });

  const tf = performance.now();
  const first = await applySpecSql(spec, { ...opts(ours), concurrency: startConcurrency(spec) });
  const firstMs = performance.now() - tf;
  const t0 = performance.now();
  const again1 = await applySpecSql(spec, { ...opts(ours), concurrency: 1 });
  const again1Ms = performance.now() - t0;
  const t1 = performance.now();
  await applySpecSql(spec, { ...opts(ours), concurrency: 10 });
  const again10Ms = performance.now() - t1;

  const firstPlan = await planSpecSql(spec, opts(floor));
  const floorFirst = await psqlScript(floor, firstPlan.text);
  const againPlan = await planSpecSql(spec, opts(floor));
  const floorAgain = await psqlScript(floor, againPlan.text);

  console.log(
    `${ROLES} roles, ${DBS} databases; first apply ${first.statements} statements, ` +
      `no-change apply ${again1.statements} statements (${again1.connections} database connections)`,
  );
  table([
    ["measure", "compute_ctl ms", "psql floor ms", "ratio"],
    [
      `first apply (concurrency ${startConcurrency(spec)})`,
      firstMs,
      floorFirst,
      firstMs / floorFirst,
    ],
    ["no-change apply (concurrency 1)", again1Ms, floorAgain, again1Ms / floorAgain],
    ["no-change apply (concurrency 10)", again10Ms, floorAgain, again10Ms / floorAgain],
  ]);
  console.log(
    `first apply: catalog read + plan ${first.planMs.toFixed(1)} ms, execute ${first.executeMs.toFixed(1)} ms; ` +
      `compute_ctl times are wall times including connecting and reading the catalog`,
  );
  await Promise.all([ours.stop(), floor.stop()]);
} finally {
  await cleanup();
}
