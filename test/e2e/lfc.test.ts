// LFC prewarm and offload through the compiled binary: a Primary compute whose basebackup
// carries the SQL stand-ins of the neon extension's LFC functions, and a fake endpoint storage.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { jsonOf } from "../support/compute.ts";
import { endpointStorageFixture } from "../support/lfc.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { TENANT, TIMELINE } from "../support/stack.ts";
import { psql, start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

const ENDPOINT = "ep-local";

describe("LFC through the binary", () => {
  test("first start: autoprewarm finds nothing (skipped); offload then prewarm round-trips", async () => {
    const es = await endpointStorageFixture();
    const s = await start({
      template: { initSql: es.standinSql },
      spec: { ...es.specFields, autoprewarm: true },
    });
    await waitStatus(s, "running");
    const prewarm = await waitFor(
      async () => {
        const st = await jsonOf(s.compute.get("/lfc/prewarm", s.token));
        return st.status === "prewarming" ? undefined : st;
      },
      { what: "autoprewarm to settle" },
    );
    expect(prewarm).toEqual({ status: "skipped" });

    expect((await s.compute.post("/lfc/offload", s.token)).status).toBe(202);
    const offload = await waitFor(
      async () => {
        const st = await jsonOf(s.compute.get("/lfc/offload", s.token));
        return st.status === "offloading" ? undefined : st;
      },
      { what: "the offload" },
    );
    expect(offload.status).toBe("completed");
    const path = `/${TENANT}/${TIMELINE}/${ENDPOINT}/lfc_state`;
    const stored = es.storage.objects.get(path);
    expect(stored).toBeDefined();
    expect(Buffer.from(Bun.zstdDecompressSync(stored ?? new Uint8Array())).toString()).toBe(
      "fake lfc state",
    );

    expect((await s.compute.post("/lfc/prewarm", s.token)).status).toBe(202);
    const again = await waitFor(
      async () => {
        const st = await jsonOf(s.compute.get("/lfc/prewarm", s.token));
        return st.status === "prewarming" ? undefined : st;
      },
      { what: "the prewarm" },
    );
    expect(again).toMatchObject({ status: "completed", total: 14, prewarmed: 13, skipped: 1 });
    expect(await psql(s, "select convert_from(last_loaded, 'UTF8') from neon.fake_lfc")).toBe(
      "fake lfc state",
    );
    const metrics = await (await s.compute.get("/metrics")).text();
    expect(metrics).toContain("compute_ctl_lfc_prewarms_total 2");
    expect(metrics).toContain("compute_ctl_lfc_offloads_total 1");
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await es.storage.stop();
  });

  test("THE RULE: no periodic offload while the autoprewarm runs, offloads after it completes", async () => {
    const es = await endpointStorageFixture({ prewarmSleepSeconds: 4, seeded: true });
    const s = await start({
      template: { initSql: es.standinSql },
      spec: { ...es.specFields, autoprewarm: true, offload_lfc_interval_seconds: 1 },
    });
    await waitStatus(s, "running");
    const completed = await waitFor(
      async () => {
        const st = await jsonOf(s.compute.get("/lfc/prewarm", s.token));
        return st.status === "completed" ? Date.now() : undefined;
      },
      { what: "the autoprewarm to complete", timeoutMs: 20_000 },
    );
    const puts = () => es.storage.requests("PUT");
    // The prewarm took ~4 s with a 1 s offload interval: every PUT came after it finished.
    const duringPrewarm = puts().filter((r) => r.at < completed - 300);
    expect(duringPrewarm).toEqual([]);
    await waitFor(() => puts().length >= 2, { what: "periodic offloads", timeoutMs: 5000 });
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await es.storage.stop();
  });

  test("after a failed autoprewarm, no periodic offload at all", async () => {
    const es = await endpointStorageFixture({ seeded: true });
    es.storage.force({ method: "GET", status: 500 });
    const s = await start({
      template: { initSql: es.standinSql },
      spec: { ...es.specFields, autoprewarm: true, offload_lfc_interval_seconds: 1 },
    });
    await waitStatus(s, "running");
    const st = await waitFor(
      async () => {
        const p = await jsonOf(s.compute.get("/lfc/prewarm", s.token));
        return p.status === "failed" ? p : undefined;
      },
      { what: "the autoprewarm to fail" },
    );
    expect(st.error).toContain("500");
    await Bun.sleep(3500);
    expect(es.storage.requests("PUT")).toEqual([]);
    // A manual offload is not gated.
    expect((await s.compute.post("/lfc/offload", s.token)).status).toBe(202);
    await waitFor(() => es.storage.requests("PUT").length === 1, { what: "the manual offload" });
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await es.storage.stop();
  });
});
