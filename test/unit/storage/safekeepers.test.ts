import { afterEach, describe, expect, test } from "bun:test";
import { checkIfSynced, checkSafekeepersSynced } from "../../../src/storage/safekeepers.ts";
import {
  type FakeSafekeeper,
  type SafekeeperStatus,
  startFakeSafekeeper,
} from "../../fakes/safekeeper.ts";

const TENANT = "3aa8fcc61f6d357410b7de754b1d9001";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";
const TOKEN = "jwt-token";

let fakes: FakeSafekeeper[] = [];
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.stop()));
  fakes = [];
});

async function sk(status: SafekeeperStatus, delayMs?: number): Promise<FakeSafekeeper> {
  const f = await startFakeSafekeeper({
    tenantId: TENANT,
    timelineId: TIMELINE,
    token: TOKEN,
    status,
    delayMs,
  });
  fakes.push(f);
  return f;
}

/** An address with nothing listening. */
async function deadAddr(): Promise<string> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return `127.0.0.1:${port}`;
}

const check = (safekeepers: string[], token: string | null = TOKEN) =>
  checkSafekeepersSynced({ safekeepers, tenantId: TENANT, timelineId: TIMELINE, token });

const synced = (lsn: string) => ({ flush: lsn, commit: lsn });

describe("checkSafekeepersSynced", () => {
  test("three safekeepers agree: that LSN", async () => {
    const all = [
      await sk(synced("0/169AD58")),
      await sk(synced("0/169AD58")),
      await sk(synced("0/169ad58")),
    ];
    expect(await check(all.map((f) => f.addr))).toBe("0/169AD58");
    for (const f of all) expect(f.rejections).toEqual([]);
    // The reference's connection: user no_user, one -c with both ids, token as password.
    const [first] = all[0]?.requests ?? [];
    expect(first?.startup).toEqual({
      client_encoding: "UTF8",
      user: "no_user",
      options: `-c timeline_id=${TIMELINE} tenant_id=${TENANT}`,
    });
  });

  test("two of three agree and one is down: the quorum decides", async () => {
    const a = await sk(synced("1/0"));
    const b = await sk(synced("1/0"));
    expect(await check([a.addr, await deadAddr(), b.addr])).toBe("1/0");
  });

  test("disagreement, commit != flush, unknown timeline: null", async () => {
    const a = await sk(synced("0/100"));
    const b = await sk(synced("0/200"));
    const c = await sk(synced("0/200"));
    expect(await check([a.addr, b.addr])).toBeNull();
    const d = await sk({ flush: "0/300", commit: "0/200" });
    const e = await sk({ flush: "0/300", commit: "0/200" });
    expect(await check([d.addr, e.addr])).toBeNull();
    const nf = await sk(null);
    expect(await check([nf.addr, c.addr])).toBeNull();
    for (const f of fakes) expect(f.rejections).toEqual([]);
  });

  test("a quorum of failures: null, quickly", async () => {
    const a = await sk(synced("0/1"));
    const t0 = performance.now();
    expect(await check([a.addr, await deadAddr(), await deadAddr()])).toBeNull();
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test("slower than 100 ms (connect + query) is a timeout: null", async () => {
    const slow = [await sk(synced("0/5"), 150), await sk(synced("0/5"), 150), await sk("hang")];
    const t0 = performance.now();
    expect(await check(slow.map((f) => f.addr))).toBeNull();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(95);
    expect(took).toBeLessThan(1000);
  });

  test("a wrong token is a failure, not a throw", async () => {
    const a = await sk(synced("0/5"));
    const b = await sk(synced("0/5"));
    expect(await check([a.addr, b.addr], "wrong")).toBeNull();
    expect(await check([a.addr, b.addr], null)).toBeNull();
  });

  test("no safekeepers, or an unparsable address: null", async () => {
    expect(await check([])).toBeNull();
    expect(await check(["[::1"])).toBeNull();
  });
});

describe("checkIfSynced", () => {
  test("as sync_sk.rs", () => {
    const ok = (flush: bigint, commit: bigint) => ({ kind: "ok" as const, flush, commit });
    expect(checkIfSynced([ok(5n, 5n), ok(5n, 5n)])).toBe(5n);
    expect(checkIfSynced([ok(5n, 5n), { kind: "not_found" }])).toBeNull();
    expect(checkIfSynced([ok(5n, 4n), ok(5n, 4n)])).toBeNull();
    expect(checkIfSynced([ok(5n, 5n), ok(6n, 5n)])).toBeNull();
    expect(checkIfSynced([ok(5n, 5n), ok(5n, 6n)])).toBeNull();
  });
});
