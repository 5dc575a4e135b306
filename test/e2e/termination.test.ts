// How an empty compute ends: /terminate (exit 0) and signals (exit 1), timed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { emptyConfig, jsonOf, type RunningCompute, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks, type SigningKey } from "../support/jwt.ts";
import { cleanup, waitFor } from "../support/proc.ts";

let key: SigningKey;
let token: string;
beforeAll(async () => {
  key = await ed25519Key();
  token = await key.sign({ scope: "compute_ctl:admin", aud: ["compute"] });
});
afterAll(cleanup);

const start = (env: Record<string, string> = {}) =>
  startCompute({ config: emptyConfig(jwks(key)), env });

async function exitAfter(c: RunningCompute) {
  const t0 = performance.now();
  const code = await c.exited;
  return { code, ms: performance.now() - t0 };
}

describe("/terminate on an empty compute", () => {
  test("immediate: 200 {lsn:null}, then exit 0 after the reference's 300 ms linger", async () => {
    const c = await start();
    const r = await c.post("/terminate?mode=immediate", token);
    expect(r.status).toBe(200);
    expect(await jsonOf(r)).toEqual({ lsn: null });
    const { code, ms } = await exitAfter(c);
    expect(code).toBe(0);
    expect(ms).toBeGreaterThanOrEqual(200);
    expect(ms).toBeLessThan(3000);
    expect(c.stderr.text).toContain(
      "Changing compute status from empty to termination-pending-immediate",
    );
    expect(c.stderr.text).toContain(
      "Changing compute status from termination-pending-immediate to terminated",
    );
  });

  test("fast: terminated while lingering, a repeat answers 201, metrics follow, exit 0", async () => {
    const c = await start({ COMPUTE_CTL_TESTING_FAST_LINGER_MS: "1500" });
    const r = await c.post("/terminate", token);
    expect(r.status).toBe(200);
    expect(await jsonOf(r)).toEqual({ lsn: null });
    const status = await jsonOf(c.get("/status", token));
    expect(status.status).toBe("terminated");
    const again = await c.post("/terminate?mode=immediate", token);
    expect(again.status).toBe(201);
    expect(await jsonOf(again)).toEqual({ lsn: null });
    const metrics = await (await c.get("/metrics")).text();
    expect(metrics.split("\n").filter((l) => l.startsWith("compute_ctl_up{"))).toEqual([
      'compute_ctl_up{build_tag="latest",status="terminated"} 1',
    ]);
    const { code, ms } = await exitAfter(c);
    expect(code).toBe(0);
    expect(ms).toBeGreaterThan(500);
  });
});

describe("signals", () => {
  for (const [name, signo] of [
    ["SIGTERM", 15],
    ["SIGINT", 2],
    ["SIGQUIT", 3],
  ] as const) {
    test(`${name} → exit 1 promptly`, async () => {
      const c = await start();
      c.proc.kill(name);
      const { code, ms } = await exitAfter(c);
      expect(code).toBe(1);
      expect(ms).toBeLessThan(3000);
      await waitFor(() => c.stderr.ended, { what: "stderr to close" });
      expect(c.stderr.text).toContain(`received ${signo} termination signal`);
    });
  }
});
