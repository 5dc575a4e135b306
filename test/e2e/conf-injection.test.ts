// postgresql.conf injection through /configure, through the compiled binary: a value of any
// vartype, a setting name and the ids cannot add a line; what Postgres rejects fails the
// configuration (500, `failed`) instead of reporting `running`, and leaves the old file.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Json, jsonOf } from "../support/compute.ts";
import { cleanup } from "../support/proc.ts";
import { psql, type Started, start, statusOf, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

function withSettings(s: Started, extra: Json[], top: Json = {}): Json {
  const base = s.stack.spec as Json;
  return {
    ...base,
    ...top,
    cluster: { ...base.cluster, settings: [...base.cluster.settings, ...extra] },
  };
}

async function configure(s: Started, spec: Json) {
  const r = await s.compute.post("/configure", s.token, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
  });
  return { code: r.status, body: await jsonOf(r) };
}

const conf = (s: Started) => readFile(join(s.stack.pgdata, "postgresql.conf"), "utf8");

describe("/configure cannot inject postgresql.conf lines", () => {
  test("newlines and quotes in values and ids are escaped; Postgres reads them back", async () => {
    const s = await start();
    await waitStatus(s, "running");
    const hostile = "x\nacc_inj.k40 = 'pwned'";
    const r = await configure(
      s,
      withSettings(s, [{ name: "test.inj", value: hostile, vartype: "string" }], {
        endpoint_id: "ep\nacc_inj.k41 = 'pwned'",
        project_id: "p'\\",
      }),
    );
    expect(r.code).toBe(200);
    expect(r.body.status).toBe("running");
    const text = await conf(s);
    expect(text.split("\n").filter((l) => l.startsWith("acc_inj"))).toEqual([]);
    // A fresh session reads the reloaded file.
    expect(
      await psql(
        s,
        "SELECT current_setting('test.inj') = E'x\\nacc_inj.k40 = ''pwned''', current_setting('neon.project_id'), current_setting('acc_inj.k40', true) IS NULL",
      ),
    ).toBe("t|p'\\|t");

    // A name outside the conf grammar: 422 naming the path, before anything changes.
    const before = await conf(s);
    const bad = await configure(
      s,
      withSettings(s, [{ name: "work_mem = 1\nacc_inj.k42", value: "1", vartype: "integer" }]),
    );
    expect(bad.code).toBe(422);
    expect(bad.body.error).toContain("spec.cluster.settings[4].name");
    expect((await statusOf(s)).status).toBe("running");
    expect(await conf(s)).toBe(before);

    // A newline in an integer setting: quoted, so Postgres sees one invalid value and rejects
    // the file. The configuration fails (500, failed) and the previous file is put back.
    const inj = await configure(
      s,
      withSettings(s, [
        { name: "work_mem", value: "4096\nacc_inj.k40 = 'pwned'", vartype: "integer" },
      ]),
    );
    expect(inj.code).toBe(500);
    expect(inj.body.error).toContain("Postgres rejects the new configuration");
    expect(inj.body.error).toContain("work_mem");
    const st = await statusOf(s);
    expect(st.status).toBe("failed");
    expect(await conf(s)).toBe(before);
    expect(await psql(s, "SELECT current_setting('acc_inj.k40', true) IS NULL")).toBe("t");
  });

  test("a value Postgres rejects in a string setting fails the configuration", async () => {
    const s = await start();
    await waitStatus(s, "running");
    const r = await configure(
      s,
      withSettings(s, [{ name: "work_mem", value: "lots", vartype: "string" }]),
    );
    expect(r.code).toBe(500);
    expect(r.body.error).toContain("work_mem: setting could not be applied");
    expect((await statusOf(s)).status).toBe("failed");
    expect(await psql(s, "SHOW work_mem")).toBe("4MB");
  });
});
