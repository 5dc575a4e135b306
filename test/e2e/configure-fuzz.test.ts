// Spec fuzzing against a live /configure of the compiled binary: generated bodies (valid ones
// and mutations, test/support/fuzz.ts) sent to a compute that starts empty on the local stack.
// For every case: no crash, never a 5xx; the answer is the one the decoder and ParsedSpec
// predict (400/422 with an application/json {"error": …}, or 200 `running`); a refused body
// leaves postgresql.conf byte-identical, the status unchanged and none of its roles or databases
// created; an accepted one has every role and database, names byte-exact (control characters
// included), each database with its owner; /status answers within 1 s and Postgres answers.
// COMPUTE_CTL_TEST_SEED replays a run; COMPUTE_CTL_TEST_LIVE_FUZZ_CASES sets the count.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { type Json, jsonOf, startCompute } from "../support/compute.ts";
import { campaignSeed, genCase, knob, predict } from "../support/fuzz.ts";
import { jwks } from "../support/jwt.ts";
import { processesUsing } from "../support/leftovers.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { FAST, start } from "../support/started.ts";

const SEED = campaignSeed();
const CASES = knob("COMPUTE_CTL_TEST_LIVE_FUZZ_CASES", 60);
console.log(`live /configure fuzz: seed ${SEED} (COMPUTE_CTL_TEST_SEED=${SEED}), ${CASES} cases`);

setDefaultTimeout(120_000 + CASES * 3_000);
afterAll(cleanup);

/** The live stack's fields: mutating them tests the stack, not the decoder. */
const PROTECT = [
  "pageserver_connstring",
  "pageserver_connection_info",
  "shard_stripe_size",
  "safekeeper_connstrings",
  "tenant_id",
  "timeline_id",
  "mode",
  "skip_pg_catalog_updates",
  // pgaudit is not installed here; swap and disk quota run NeonVM scripts; prewarm and offload
  // talk to an endpoint storage: each fails a valid spec for reasons outside the document.
  "audit_log_level",
  "swap_size_bytes",
  "disk_quota_bytes",
  "autoprewarm",
  "offload_lfc_interval_seconds",
  "cluster.settings",
  "cluster.postgresql_conf",
  "cluster.databases.owner",
];

/** Unknown keys that must be ignored wherever they appear. */
const HOSTILE_KEYS = ["__proto__", "constructor", "toJSON", "prototype", "valueOf"];

describe(`live /configure fuzzing (seed ${SEED})`, () => {
  test(`${CASES} generated bodies against the compiled binary`, async () => {
    const s = await start({ viaConfigure: true });
    const base = s.stack.spec as Json;
    const overlay = (spec: Json) => {
      for (const k of [
        "pageserver_connstring",
        "safekeeper_connstrings",
        "tenant_id",
        "timeline_id",
      ]) {
        spec[k] = base[k];
      }
      spec.mode = "Primary";
      spec.shard_stripe_size = null;
      spec.skip_pg_catalog_updates = false;
      spec.audit_log_level = "Disabled";
      spec.swap_size_bytes = null;
      spec.disk_quota_bytes = null;
      spec.autoprewarm = false;
      spec.offload_lfc_interval_seconds = null;
      spec.cluster.settings = structuredClone(base.cluster.settings);
      delete spec.cluster.postgresql_conf;
    };
    const sql = postgres(s.stack.connstr, { max: 1, onnotice: () => {}, connect_timeout: 5 });
    const confPath = join(s.stack.pgdata, "postgresql.conf");
    const readConf = () => readFile(confPath).catch(() => null);
    const counts: Record<string, number> = {};
    let status = "empty";
    const failures: string[] = [];
    try {
      for (let i = 0; i < CASES; i++) {
        const c =
          i < HOSTILE_KEYS.length
            ? hostileKeysCase(i, overlay)
            : genCase(SEED, i, { nameSuffix: `#${i}`, overlay, protect: PROTECT });
        const where = `case ${i} (COMPUTE_CTL_TEST_SEED=${SEED}; ${c.mutations.join("; ") || "valid"})`;
        const want = predict(c.text);
        const confBefore = await readConf();
        const r = await s.compute.post("/configure", s.token, {
          headers: { "content-type": "application/json" },
          body: c.text,
        });
        const text = await r.text();
        const detail = `${where}: ${r.status} ${text.slice(0, 300)}\nbody: ${c.text.slice(0, 600)}`;
        expect(s.compute.proc.exitCode, detail).toBeNull();
        counts[`${want.outcome} ${r.status}`] = (counts[`${want.outcome} ${r.status}`] ?? 0) + 1;
        if (r.status === 500 && want.outcome === "accepted") {
          // A well-formed spec Postgres refuses (an option value out of range, say): 500 only
          // with /status `failed`, and the error names what Postgres said. As in the reference,
          // a failed reconfigure leaves the compute `failed` with Postgres up (a failed start
          // exits by itself): it is stopped, and the next one starts on the same PGDATA.
          const st = await jsonOf(s.compute.get("/status", s.token));
          expect(st.status, detail).toBe("failed");
          expect(JSON.parse(text).error, detail).toContain("failed");
          failures.push(`${where}: ${JSON.parse(text).error}`);
          if (s.compute.proc.exitCode === null) s.compute.proc.kill("SIGTERM");
          expect(await s.compute.exited, detail).toBe(1);
          await waitFor(() => processesUsing(s.stack.pgdata).length === 0, {
            what: "the failed compute's processes gone",
            timeoutMs: 15_000,
          });
          s.compute = await startCompute({
            config: { spec: null, compute_ctl_config: { jwks: jwks(s.key) } },
            connstr: s.stack.connstr,
            pgbin: s.stack.pgbin.pgbin,
            pgdata: s.stack.pgdata,
            env: FAST,
          });
          s.token = await s.key.sign({ compute_id: s.compute.computeId });
          status = "empty";
          continue;
        }
        expect(r.status, detail).toBeLessThan(500);
        if (want.outcome === "accepted") {
          expect(r.status, detail).toBe(200);
          expect(JSON.parse(text).status, detail).toBe("running");
          status = "running";
          const spec = want.body?.spec as Json;
          for (const role of spec.cluster.roles) {
            const rows = await sql`SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${role.name}`;
            expect(rows.length, `${detail}\nrole ${JSON.stringify(role.name)}`).toBe(1);
          }
          for (const db of spec.cluster.databases) {
            const rows = await sql`SELECT pg_catalog.pg_get_userbyid(datdba) AS owner
              FROM pg_catalog.pg_database WHERE datname = ${db.name}`;
            expect(rows.length, `${detail}\ndatabase ${JSON.stringify(db.name)}`).toBe(1);
            expect(rows[0]?.owner, `${detail}\nowner of ${JSON.stringify(db.name)}`).toBe(db.owner);
          }
        } else {
          expect(r.status, detail).toBe(want.outcome === "schema" ? 422 : 400);
          expect(r.headers.get("content-type") ?? "", detail).toStartWith("application/json");
          const body = JSON.parse(text);
          expect(Object.keys(body), detail).toEqual(["error"]);
          expect(typeof body.error, detail).toBe("string");
          expect(
            Buffer.compare((await readConf()) ?? Buffer.alloc(0), confBefore ?? Buffer.alloc(0)),
            detail,
          ).toBe(0);
          // None of a refused spec's roles exists: names carry the case number, so only this
          // case could have created them.
          const roles = ((want.body?.spec as Json)?.cluster?.roles ?? []) as Json[];
          for (const role of roles) {
            if (typeof role?.name !== "string" || !role.name.endsWith(`#${i}`)) continue;
            const rows = await sql`SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${role.name}`;
            expect(rows.length, `${detail}\nrole ${JSON.stringify(role.name)}`).toBe(0);
          }
        }
        const t0 = performance.now();
        const st = await jsonOf(
          s.compute.get("/status", s.token, { signal: AbortSignal.timeout(1000) }),
        );
        expect(performance.now() - t0, `${where}: /status latency`).toBeLessThan(1000);
        expect(st.status, `${where}: status after the case`).toBe(status);
        if (status === "running") expect((await sql`SELECT 1 AS one`)[0]?.one).toBe(1);
      }
    } finally {
      await sql.end({ timeout: 1 });
      console.log(`live /configure fuzz outcomes (predicted, answered): ${JSON.stringify(counts)}`);
      for (const f of failures) console.log(`apply refused by Postgres: ${f}`);
    }
    // Both paths were exercised.
    expect(Object.keys(counts).some((k) => k.startsWith("accepted"))).toBe(true);
  });
});

/** A valid spec with unknown keys named like Object's own members, at the top and nested. */
function hostileKeysCase(i: number, overlay: (spec: Json) => void) {
  const key = HOSTILE_KEYS[i] ?? "__proto__";
  // The first unmutated case of a side sequence: a valid document to add the keys to.
  let c = genCase(SEED, 1_000_000 + i, { nameSuffix: `#${i}`, overlay, protect: PROTECT });
  for (let j = 1; c.mutations.length > 0; j++) {
    c = genCase(SEED, 1_000_000 + i + 100 * j, { nameSuffix: `#${i}`, overlay, protect: PROTECT });
  }
  const value = JSON.stringify({ polluted: true, status: "running", toString: 1 });
  const text = c.text
    .replace('{"spec":{', `{"${key}":${value},"spec":{"${key}":${value},`)
    .replace('"cluster":{', `"cluster":{"${key}":${value},`);
  return { index: i, seed: SEED, text, mutations: [`unknown key ${key} at three levels`] };
}
