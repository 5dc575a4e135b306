import { afterAll, expect, test } from "bun:test";
import { startTestPostgres } from "../support/pg.ts";
import { cleanup } from "../support/proc.ts";

afterAll(cleanup);

test("the throwaway Postgres 15 answers as cloud_admin, through postgres.js and psql", async () => {
  const pg = await startTestPostgres();
  const [row] =
    await pg.sql`select current_user as u, current_setting('server_version_num')::int as v`;
  expect(row).toEqual({ u: "cloud_admin", v: expect.any(Number) });
  expect(Number(row?.v)).toBeGreaterThanOrEqual(150000);
  expect((await pg.psql("select 1+1")).trim()).toBe("2");
  await pg.stop();
});
