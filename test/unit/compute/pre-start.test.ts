import { describe, expect, test } from "bun:test";
import { runPreStartTasks } from "../../../src/compute/pre-start.ts";

describe("pre-start tasks", () => {
  test("run concurrently; the slowest is the one Postgres waited on", async () => {
    const t0 = performance.now();
    const t = await runPreStartTasks([
      { name: "pgdata", run: () => Bun.sleep(150) },
      { name: "swap", run: () => Bun.sleep(300) },
      { name: "tls", run: () => Bun.sleep(50) },
    ]);
    const total = performance.now() - t0;
    expect(total).toBeLessThan(450 + 250);
    expect(t.waitedOn).toBe("swap");
    expect(Object.keys(t.tasks)).toEqual(["pgdata", "swap", "tls"]);
    expect(t.tasks.swap).toBeGreaterThanOrEqual(290);
    expect(t.tasks.tls).toBeLessThan(t.tasks.swap as number);
  });

  test("a failure is thrown only once every task has settled; the first failure wins", async () => {
    let slowDone = false;
    const err = await runPreStartTasks([
      { name: "fails-first", run: () => Bun.sleep(20).then(() => Promise.reject(new Error("a"))) },
      {
        name: "slow",
        run: () =>
          Bun.sleep(200).then(() => {
            slowDone = true;
          }),
      },
      { name: "fails-later", run: () => Bun.sleep(100).then(() => Promise.reject(new Error("b"))) },
    ]).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe("a");
    expect(slowDone).toBe(true);
  });
});
