// configFileErrors against real Postgres 15: what pg_file_settings reports for a file on disk.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { configFileErrors } from "../../../src/postgres/conf-check.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";

let pg: TestPostgres;
let base = "";
beforeAll(async () => {
  pg = await startTestPostgres();
  base = await Bun.file(join(pg.pgdata, "postgresql.conf")).text();
});
afterAll(() => pg?.stop());

async function withConf(extra: string): Promise<string[]> {
  await Bun.write(join(pg.pgdata, "postgresql.conf"), base);
  appendFileSync(join(pg.pgdata, "postgresql.conf"), extra);
  return configFileErrors(new URL(pg.url));
}

test("a changed restart-only setting is not an error", async () => {
  expect(await withConf("hot_standby = off\nshared_buffers = 64MB\n")).toEqual([]);
});

test("an invalid value of a reloadable setting is", async () => {
  const errors = await withConf("work_mem = 'abc'\n");
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/postgresql\.conf:\d+: work_mem: setting could not be applied$/);
});

test("an unknown setting is", async () => {
  const errors = await withConf("no_such_setting = 1\n");
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/no_such_setting: unrecognized configuration parameter$/);
});
