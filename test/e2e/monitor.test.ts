// The activity monitor and the installed-extensions collection through the compiled binary.
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { jsonOf } from "../support/compute.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { psql, start, statusOf, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

test("last_active moves for another role's query, not for cloud_admin's; extensions are counted", async () => {
  const s = await start();
  await waitStatus(s, "running");
  await psql(s, "select pg_sleep(0.7)");
  await Bun.sleep(700);
  expect((await statusOf(s)).last_active).toBeNull();

  await psql(s, "create role alice login");
  const before = Date.now();
  const p = Bun.spawn(
    [
      "psql",
      "-X",
      "-h",
      "127.0.0.1",
      "-p",
      String(s.stack.pgPort),
      "-U",
      "alice",
      "-d",
      "postgres",
      "-c",
      "select pg_sleep(1.2)",
    ],
    { stdout: "ignore", stderr: "ignore" },
  );
  const active = await waitFor(
    async () => {
      const st = await statusOf(s);
      return st.last_active ? (st.last_active as string) : undefined;
    },
    { what: "last_active to be set", timeoutMs: 5000 },
  );
  await p.exited;
  expect(active).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
  expect(Date.parse(active)).toBeGreaterThanOrEqual(before - 1000);

  const metrics = await (await s.compute.get("/metrics")).text();
  expect(metrics).toMatch(
    /compute_installed_extensions\{extension_name="plpgsql",version="1\.0",owned_by_superuser="1"\} [1-9]/,
  );
  expect(s.compute.stderr.text).toContain("[NEON_EXT_STAT]");
  const t = await jsonOf(s.compute.get("/metrics.json", s.token));
  expect(t.total_startup_ms).toBeGreaterThan(0);
  await terminate(s, "immediate");
  expect(await s.compute.exited).toBe(0);
});
