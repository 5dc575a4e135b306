// The catalog, grants, extensions and diagnostics routes on the servers the reference puts them
// on, through the compiled binary (their details are tested in test/unit/http/routes-*).
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { jsonOf } from "../support/compute.ts";
import { cleanup } from "../support/proc.ts";
import { psql, start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

const json = (body: unknown): RequestInit => ({
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

test("each route answers on its server, with its auth", async () => {
  const s = await start();
  await waitStatus(s, "running");

  // External, JWT.
  expect((await s.compute.get("/dbs_and_roles")).status).toBe(400);
  const catalog = await jsonOf(s.compute.get("/dbs_and_roles", s.token));
  expect(catalog.roles.map((r: { name: string }) => r.name)).toContain("cloud_admin");
  expect(catalog.databases.map((d: { name: string }) => d.name)).toContain("postgres");
  const schema = await s.compute.get("/database_schema?database=postgres", s.token);
  expect(schema.status).toBe(200);
  expect(await schema.text()).toContain("PostgreSQL database dump");
  const missing = await s.compute.get("/database_schema?database=nope", s.token);
  expect(missing.status).toBe(404);

  // External, no auth.
  expect((await s.compute.get("/autoscaling_metrics")).status).toBe(500);

  // Internal, no auth.
  await psql(s, "create role app login");
  const g = await s.compute.post(
    "internal:/grants",
    undefined,
    json({ database: "postgres", schema: "public", privileges: ["USAGE"], role: "app" }),
  );
  expect(g.status).toBe(201);
  expect(await psql(s, "select has_schema_privilege('app', 'public', 'USAGE')")).toBe("t");
  const e = await s.compute.post(
    "internal:/extensions",
    undefined,
    json({ extension: "pg_trgm", database: "postgres", version: "1.6" }),
  );
  expect(e.status).toBe(201);
  expect(await jsonOf(e)).toEqual({ extension: "pg_trgm", version: "1.6" });
  const f = await s.compute.post("internal:/failpoints", undefined, json([]));
  expect(f.status).toBe(412);
  // The internal routes are not on the external server.
  expect((await s.compute.post("/grants", s.token, json({}))).status).toBe(404);

  await terminate(s, "immediate");
  expect(await s.compute.exited).toBe(0);
});
