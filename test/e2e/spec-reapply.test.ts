// The re-apply of an unchanged spec through the compiled binary: /configure connects to each user
// database once, to read its public schema, and writes nothing there; a public schema changed
// behind compute_ctl's back is repaired by the next /configure, in that database only. What ran
// is read from Postgres's own statement log, which compute_ctl forwards on its stderr.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { type Json, jsonOf } from "../support/compute.ts";
import { installNeonStub } from "../support/neon-stub.ts";
import { cleanup } from "../support/proc.ts";
import { psql, type Started, start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(120_000);
afterAll(cleanup);

const stub = installNeonStub();
if (!stub.installed) console.warn(`skipping the spec re-apply e2e test: ${stub.reason}`);
const primaryTest = stub.installed ? test : test.skip;

const DATABASES = Array.from({ length: 6 }, (_, i) => ({ name: `app ${i}`, owner: "alice" }));
const MARK = "reapply-test";

/** The stack's spec with every statement logged, with its database and application. */
function loggedSpec(s: Started): Json {
  const base = s.stack.spec as Json;
  return {
    ...base,
    cluster: {
      ...base.cluster,
      settings: [
        ...base.cluster.settings,
        { name: "log_statement", value: "all", vartype: "enum" },
        { name: "log_line_prefix", value: `${MARK}|%d|%a| `, vartype: "string" },
      ],
    },
  };
}

async function configure(s: Started, spec: Json): Promise<void> {
  const r = await s.compute.post("/configure", s.token, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
  });
  expect({ code: r.status, body: await jsonOf(r) }).toMatchObject({ code: 200 });
}

/**
 * Per user database: the statements the apply ran there (first line of each). The forwarder
 * writes Postgres's log lines joined by U+200B into lines prefixed `PG:`.
 */
function applyStatements(log: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const entry = new RegExp(
    `${MARK}\\|([^|]*)\\|compute_ctl:apply_config\\| LOG: {2}statement: (.*)$`,
  );
  for (const line of log.split(/\n|\u200b/)) {
    const m = line.match(entry);
    if (!m || m[1] === "postgres") continue;
    const list = out.get(m[1]!) ?? [];
    list.push(m[2]!);
    out.set(m[1]!, list);
  }
  return out;
}

let barriers = 0;

/** The compute's stderr from `from` on, once Postgres has logged a new barrier statement. */
async function logSince(s: Started, from: number): Promise<string> {
  const barrier = `${MARK}-barrier-${++barriers}`;
  await psql(s, `SELECT '${barrier}'`);
  for (let i = 0; i < 200; i++) {
    const text = s.compute.stderr.text.slice(from);
    if (text.includes(barrier)) return text;
    await Bun.sleep(50);
  }
  throw new Error("the forwarded Postgres log did not catch up");
}

primaryTest(
  "an unchanged /configure writes in no user database; an out-of-band change is repaired where it was made",
  async () => {
    const s = await start({
      skipCatalogUpdates: false,
      roles: [{ name: "alice", encrypted_password: null }],
      databases: DATABASES,
    });
    try {
      await waitStatus(s, "running", 60_000);
      const spec = loggedSpec(s);
      // The first /configure only turns the statement log on (it reloads before it applies).
      await configure(s, spec);
      // Its own statements reach the forwarded log late: wait for them before counting.
      await logSince(s, 0);

      let from = s.compute.stderr.text.length;
      await configure(s, spec);
      const firstLog = await logSince(s, from);
      let ran = applyStatements(firstLog);
      expect([...ran.keys()].sort()).toEqual(DATABASES.map((d) => d.name).sort());
      for (const [db, statements] of ran) {
        expect({ db, statements: statements.map((x) => x.slice(0, 11)) }).toEqual({
          db,
          statements: ["WITH me AS "],
        });
      }

      // Behind compute_ctl's back: the admin takes the public schema of one database.
      await psql(s, "ALTER SCHEMA public OWNER TO cloud_admin", "app 3");

      await logSince(s, 0);
      from = s.compute.stderr.text.length;
      await configure(s, spec);
      ran = applyStatements(await logSince(s, from));
      const written = [...ran]
        .filter(([, statements]) => statements.some((x) => !x.startsWith("WITH me AS ")))
        .map(([db]) => db);
      expect(written).toEqual(["app 3"]);
      const owner = await psql(
        s,
        "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'",
        "app 3",
      );
      expect(owner.trim()).toBe("alice");
    } finally {
      await terminate(s, "immediate").catch(() => {});
      await s.compute.exited;
      await s.stack.stop();
    }
  },
);
