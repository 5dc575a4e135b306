// prefer_protocol grpc end to end: the compiled binary fetches the basebackup from the fake gRPC
// pageserver (the libpq one, also in the spec, must see nothing), starts Postgres on it, and a
// Static compute leases its LSN over gRPC.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseLsn } from "../../src/api/lsn.ts";
import { jsonOf } from "../support/compute.ts";
import { cleanup, waitFor } from "../support/proc.ts";
import { TENANT, TIMELINE } from "../support/stack.ts";
import {
  expectNothingLeft,
  psql,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

describe("prefer_protocol grpc", () => {
  test("Replica: GetBaseBackup from shard 0 with the token, Postgres runs on it, metrics set", async () => {
    const s = await start({ mode: "Replica", protocol: "grpc", token: "storage-jwt" });
    await waitStatus(s, "running");
    const grpc = s.stack.grpcPageserver!;
    expect(grpc.rejections).toEqual([]);
    expect(grpc.requests.map((r) => [r.method, r.fields])).toEqual([
      ["GetBaseBackup", { replica: true, compression: 2n }],
    ]);
    expect(grpc.requests[0]?.headers).toMatchObject({
      "neon-tenant-id": TENANT,
      "neon-timeline-id": TIMELINE,
      "neon-shard-id": "0000",
      authorization: "Bearer storage-jwt",
    });
    expect(grpc.requests[0]?.headers["grpc-accept-encoding"]).toBeUndefined();
    expect(s.stack.pageserver.requests).toEqual([]);
    expect(await psql(s, "select pg_is_in_recovery()")).toBe("t");
    const t = await jsonOf(s.compute.get("/metrics.json", s.token));
    expect(t.basebackup_bytes).toBe(readFileSync(s.stack.template.tarGzPath).length);
    expect(t.basebackup_ms).toBeGreaterThan(0);
    expect(t.pageserver_connect_micros).toBeGreaterThan(0);
    expect(await terminate(s, "immediate")).toEqual({ code: 200, body: { lsn: null } });
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });

  test("an error status after the tar fails the attempt; the retry succeeds", async () => {
    const s = await start({
      mode: "Replica",
      protocol: "grpc",
      grpcFaults: { errorAfterData: true, faultyCalls: 1 },
      env: { NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "10" },
    });
    await waitStatus(s, "running");
    expect(s.stack.grpcPageserver?.requests).toHaveLength(2);
    expect(s.compute.stderr.text).toMatch(
      /Failed to get basebackup: .*\[internal\] basebackup failed: injected error after data.*\(attempt 0\/10\)/,
    );
    const t = await jsonOf(s.compute.get("/metrics.json", s.token));
    expect(t.basebackup_bytes).toBe(readFileSync(s.stack.template.tarGzPath).length);
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });

  test("a reset stream on every attempt fails the start: failed, exit 1, nothing left", async () => {
    const s = await start({
      mode: "Replica",
      protocol: "grpc",
      grpcFaults: { resetAfterChunks: 2, chunkSize: 65536 },
    });
    const st = await waitStatus(s, "failed");
    expect(st.error).toContain("failed to get basebackup@0/0");
    expect(await s.compute.exited).toBe(1);
    await expectNothingLeft(s);
  });

  test("Static: the basebackup at the LSN, then LeaseLsn renewed on the expiry's schedule", async () => {
    const answers: number[] = [];
    const s = await start({
      mode: "Static",
      protocol: "grpc",
      token: "storage-jwt",
      lease: () => {
        answers.push(Date.now());
        return Date.now() + 3000;
      },
    });
    await waitStatus(s, "running");
    const grpc = s.stack.grpcPageserver!;
    const lsn = parseLsn(s.stack.template.checkpointLsn);
    expect(grpc.rejections).toEqual([]);
    expect(grpc.requests.filter((r) => r.method === "GetBaseBackup").map((r) => r.fields)).toEqual([
      { lsn, replica: true, compression: 2n },
    ]);
    await waitFor(() => answers.length >= 2, { what: "two lease requests", timeoutMs: 10_000 });
    const leases = grpc.requests.filter((r) => r.method === "LeaseLsn");
    expect(leases[0]?.fields).toEqual({ lsn });
    expect(leases[0]?.headers).toMatchObject({
      "neon-shard-id": "0000",
      authorization: "Bearer storage-jwt",
    });
    // valid 3 s -> renew after max(3 s - 60 s, 1.5 s) = 1.5 s.
    const gap = (answers[1] ?? 0) - (answers[0] ?? 0);
    expect(gap).toBeGreaterThanOrEqual(1300);
    expect(gap).toBeLessThan(3000);
    expect(s.stack.pageserver.requests).toEqual([]);
    expect((await statusOf(s)).status).toBe("running");
    expect(await terminate(s, "immediate")).toEqual({ code: 200, body: { lsn: null } });
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
  });
});
