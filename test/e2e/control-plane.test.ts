// The binary fetching its configuration from a (fake) control plane: attempts, gaps, the
// Authorization header, the Empty answer, and the request counter.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { startFakeControlPlane } from "../fakes/control-plane.ts";
import { runBinary } from "../support/binary.ts";
import { CONNSTR, emptyConfig, PGBIN, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { cleanup, makeUserDir } from "../support/proc.ts";

let pgdata: string;
beforeAll(async () => {
  pgdata = join(await makeUserDir("cp-"), "pgdata");
});
afterAll(cleanup);

const ID = "compute-cp";
const args = (url: string) => [
  "-D",
  pgdata,
  "-C",
  CONNSTR,
  "-b",
  PGBIN,
  "--compute-id",
  ID,
  "-p",
  url,
  "--external-http-port",
  "0",
  "--internal-http-port",
  "0",
];

const gaps = (at: number[]) => at.slice(1).map((t, i) => t - (at[i] ?? 0));

describe("fetching the config from the control plane", () => {
  test("502 three times: exactly 3 attempts ~100 ms apart, each logged, then exit 1", async () => {
    const cp = await startFakeControlPlane([{ status: 502, body: "bad gateway" }], {
      computeId: ID,
    });
    const r = await runBinary(args(cp.url));
    await cp.stop();
    expect(r.code).toBe(1);
    expect(cp.requests).toHaveLength(3);
    for (const g of gaps(cp.requests.map((q) => q.at))) {
      expect(g).toBeGreaterThanOrEqual(90);
      expect(g).toBeLessThan(600);
    }
    expect(r.stderr).toContain(
      "Exhausted all attempts to retrieve the config from the control plane",
    );
    // One ERROR line per failed attempt (as the reference), then the final one-line error.
    const errors = r.stderr.split("\n").filter((l) => / ERROR /.test(l));
    expect(
      errors.slice(0, 3).map((l) => l.match(/attempt (\d) to get config failed/)?.[1]),
    ).toEqual(["1", "2", "3"]);
    expect(errors).toHaveLength(4);
    expect(errors[3]).toContain("Exhausted all attempts");
    expect(errors[3]).toContain("502");
  });

  test("404 is fatal after one attempt", async () => {
    const cp = await startFakeControlPlane([{ status: 404, body: "no such compute" }], {
      computeId: ID,
    });
    const r = await runBinary(args(cp.url));
    await Bun.sleep(300);
    await cp.stop();
    expect(r.code).toBe(1);
    expect(cp.requests).toHaveLength(1);
    expect(r.stderr).toContain("unexpected control plane response status code: 404 Not Found");
  });

  test("garbage, then 503, then empty: the compute waits for /configure; labels counted", async () => {
    const key = await ed25519Key();
    const cp = await startFakeControlPlane(
      [
        "garbage",
        { status: 503, body: "unavailable" },
        { status: 200, body: JSON.stringify({ status: "empty", ...emptyConfig(jwks(key)) }) },
      ],
      { computeId: ID, token: "cp-token" },
    );
    const c = await startCompute({
      computeId: ID,
      args: ["-p", cp.url],
      env: { NEON_CONTROL_PLANE_TOKEN: "cp-token" },
    });
    expect(cp.requests.map((q) => q.authorization)).toEqual([
      "Bearer cp-token",
      "Bearer cp-token",
      "Bearer cp-token",
    ]);
    expect(cp.rejected).toEqual([]);
    const status = await c.get("/status", await key.sign({ compute_id: ID }));
    expect(status.status).toBe(200);
    expect(((await status.json()) as { status: string }).status).toBe("empty");
    const metrics = (await (await c.get("/metrics")).text())
      .split("\n")
      .filter((l) => l.startsWith("compute_ctl_cplane_requests_total{"));
    expect(metrics.sort()).toEqual([
      'compute_ctl_cplane_requests_total{rpc="GetConfig",http_status="200 OK"} 2',
      'compute_ctl_cplane_requests_total{rpc="GetConfig",http_status="503 Service Unavailable"} 1',
    ]);
    c.proc.kill("SIGTERM");
    await c.exited;
    await cp.stop();
  });

  test("nothing listening: 3 attempts labelled unknown, exit 1", async () => {
    const r = await runBinary(args("http://127.0.0.1:9"));
    expect(r.code).toBe(1);
    expect(r.stderr.match(/attempt \d to get config failed/g)).toHaveLength(3);
  });
});
