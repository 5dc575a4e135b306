import { afterAll, expect, test } from "bun:test";
import { Children } from "../../../src/compute/children.ts";
import { cleanup } from "../../support/proc.ts";

afterAll(cleanup);

test("forwardTermination sends SIGINT to postgres and SIGTERM to the rest", async () => {
  const children = new Children();
  const sh = (trap: string) =>
    Bun.spawn(["bash", "-c", `trap 'echo ${trap}; exit 0' ${trap}; while :; do sleep 0.05; done`], {
      stdout: "pipe",
    });
  const pg = sh("INT");
  const sync = sh("TERM");
  children.add("postgres", pg);
  children.add("sync-safekeepers", sync);
  await Bun.sleep(100);
  children.forwardTermination();
  expect(await new Response(pg.stdout).text()).toBe("INT\n");
  expect(await new Response(sync.stdout).text()).toBe("TERM\n");
  await children.drain(2000);
  expect(children.size).toBe(0);
});

test("drain SIGKILLs what ignores its signal after the grace", async () => {
  const children = new Children();
  const stubborn = Bun.spawn(["bash", "-c", "trap '' TERM INT; while :; do sleep 0.05; done"]);
  children.add("other", stubborn);
  await Bun.sleep(100);
  children.forwardTermination();
  const t0 = performance.now();
  await children.drain(300);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  expect(stubborn.signalCode).toBe("SIGKILL");
});

test("after shutdown(), a child added late is killed at once", async () => {
  const children = new Children();
  children.shutdown();
  const late = Bun.spawn(["sleep", "30"]);
  children.add("sync-safekeepers", late);
  await late.exited;
  expect(late.signalCode).toBe("SIGKILL");
});
