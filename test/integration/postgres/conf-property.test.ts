// Property test of postgresql.conf rendering against a real Postgres 15: for generated values of
// every vartype and every rendered field, the managed block holds exactly one `name = value` line
// per setting, no other line changes, and Postgres reads each value back exactly
// (pg_file_settings parses the file afresh on every query).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { isConfValueToken } from "../../../src/api/conf-syntax.ts";
import { decode } from "../../../src/api/decode.ts";
import { parseSpec } from "../../../src/api/parsed-spec.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { renderPostgresConf } from "../../../src/postgres/conf.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";

const VARTYPES = ["bool", "integer", "real", "string", "enum"];
const ITERATIONS = Number(process.env.CONF_PROPERTY_ITERATIONS ?? 150);

/** mulberry32: a small seeded PRNG, so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The characters that matter to the conf grammar, plus control characters and non-ASCII.
const HOSTILE = [
  ..."'\"\\\n\r\t\b\f =#,;:/.-+_eE0x9aZ",
  "\x01",
  "\x1f",
  "\x7f",
  "é",
  "€",
  "😀",
  "\u2028",
  "''",
  "\\n",
  "\n#",
  "\nacc_inj.k40 = 'pwned'",
  "include 'x'",
];
const TOKENS = ["64MB", "on", "-1", "0x1F", "1.5e3", "logical", "'quoted'", "a.b:c/d"];

function generator(seed: number) {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const value = (): string => {
    // A third are plain tokens (written raw for non-string vartypes), the rest hostile mixes.
    if (rnd() < 0.3) return pick(TOKENS);
    const n = Math.floor(rnd() * 12);
    let s = "";
    for (let i = 0; i < n; i++) s += rnd() < 0.6 ? pick(HOSTILE) : pick(TOKENS);
    return s;
  };
  return { rnd, pick, value };
}

/** What Postgres should read for a setting: non-string values that are a quoted literal unquote. */
function expectedValue(vartype: string, value: string): string {
  if (vartype === "string" || !isConfValueToken(value) || !value.startsWith("'")) return value;
  return value.slice(1, -1).replaceAll("''", "'").replace(/\\(.)/g, "$1");
}

let pg: TestPostgres;

beforeAll(async () => {
  pg = await startTestPostgres();
}, 60_000);

afterAll(async () => {
  await pg?.stop();
});

function renderFor(doc: Record<string, unknown>): string {
  return renderPostgresConf({
    pspec: parseSpec(decode(ComputeSpec, doc)),
    privilegedRoleName: "neon_superuser",
    internalHttpPort: 3081,
    tls: null,
    platform: "linux",
    overcommitMemory: "0",
  });
}

function baseDoc(): Record<string, unknown> {
  return {
    format_version: 1.0,
    suspend_timeout_seconds: -1,
    tenant_id: "b0554b632bd4d547a63b86c3630317e8",
    timeline_id: "2414a61ffc94e428f14b5758fe308e13",
    mode: "Primary",
    cluster: { roles: [], databases: [] },
  };
}

describe("postgresql.conf rendering, property", () => {
  test(`${ITERATIONS} generated specs: one line per setting, nothing else moves, exact read-back`, async () => {
    const seed0 = Number(process.env.CONF_PROPERTY_SEED ?? Date.now() % 1_000_000);
    for (let it = 0; it < ITERATIONS; it++) {
      const seed = seed0 + it;
      const g = generator(seed);
      const settings = Array.from({ length: 1 + Math.floor(g.rnd() * 6) }, (_, i) => ({
        name: `prop.k${i}`,
        value: g.value(),
        vartype: g.pick(VARTYPES),
      }));
      const fields = {
        endpoint_id: g.value(),
        project_id: g.value(),
        branch_id: g.value(),
        pageserver_connstring: g.value().replaceAll(",", ""),
        safekeeper_connstrings: [`${g.value()}a`, `${g.value()}b`],
      };
      const doc = { ...baseDoc(), ...fields, cluster: { roles: [], databases: [], settings } };
      // The same spec with harmless values: the line structure must be identical.
      const plain = {
        ...baseDoc(),
        endpoint_id: "e",
        project_id: "p",
        branch_id: "b",
        pageserver_connstring: "c",
        safekeeper_connstrings: ["sa", "sb"],
        cluster: {
          roles: [],
          databases: [],
          settings: settings.map((s) => ({ ...s, value: "v" })),
        },
      };
      const text = renderFor(doc);
      const lines = text.split("\n");
      const plainLines = renderFor(plain).split("\n");
      const context = `seed ${seed}: ${JSON.stringify(doc)}\n${text}`;

      expect(lines.length, context).toBe(plainLines.length);
      lines.forEach((line, i) => {
        const other = plainLines[i] ?? "";
        if (line === other) return;
        // Only the value part of an assignment may differ.
        const key = (l: string) => l.split("=")[0];
        expect(key(line), context).toBe(key(other));
      });
      const begin = lines.indexOf("# Managed by compute_ctl: begin");
      const end = lines.indexOf("# Managed by compute_ctl: end");
      const block = lines.slice(begin + 1, end);
      expect(block.length, context).toBe(settings.length);
      block.forEach((line, i) => {
        expect(line.startsWith(`prop.k${i} = `), context).toBe(true);
      });

      writeFileSync(join(pg.pgdata, "postgresql.conf"), text);
      const rows = await pg.sql<
        { name: string | null; setting: string | null; error: string | null }[]
      >`
          SELECT name, setting, error FROM pg_file_settings
          WHERE sourcefile = current_setting('config_file')`;
      expect(
        rows.filter((r) => r.error !== null),
        context,
      ).toEqual([]);
      const read = new Map<string, string | null>();
      for (const r of rows) {
        // Every assignment in the file is a distinct name: exactly one row per name.
        expect(read.has(r.name ?? ""), context).toBe(false);
        read.set(r.name ?? "", r.setting);
      }
      settings.forEach((s) => {
        expect(read.get(s.name), context).toBe(expectedValue(s.vartype, s.value));
      });
      expect(read.get("neon.endpoint_id"), context).toBe(fields.endpoint_id);
      expect(read.get("neon.project_id"), context).toBe(fields.project_id);
      expect(read.get("neon.branch_id"), context).toBe(fields.branch_id);
      expect(read.get("neon.pageserver_connstring"), context).toBe(fields.pageserver_connstring);
      expect(read.get("neon.safekeepers"), context).toBe(fields.safekeeper_connstrings.join(","));
    }
  }, 240_000);
});
