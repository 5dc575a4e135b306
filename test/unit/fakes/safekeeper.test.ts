import { afterEach, describe, expect, test } from "bun:test";
import { PqConnection, PqError } from "../../../src/storage/pq.ts";
import { type FakeSafekeeper, startFakeSafekeeper } from "../../fakes/safekeeper.ts";

const TENANT = "3aa8fcc61f6d357410b7de754b1d9001";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";
const OPTIONS = `-c timeline_id=${TIMELINE} tenant_id=${TENANT}`;

let sk: FakeSafekeeper | null = null;
afterEach(async () => {
  await sk?.stop();
  sk = null;
});

const connect = (o: Partial<Parameters<typeof PqConnection.connect>[0]> = {}) =>
  PqConnection.connect({
    host: "127.0.0.1",
    port: sk?.port ?? 0,
    user: "no_user",
    options: OPTIONS,
    timeoutMs: 2000,
    ...o,
  });

describe("fake safekeeper", () => {
  test("TIMELINE_STATUS with a row, then without (timeline not found)", async () => {
    sk = await startFakeSafekeeper({
      tenantId: TENANT,
      timelineId: TIMELINE,
      token: "jwt",
      status: { flush: "0/169AD58", commit: "0/169AD58" },
    });
    const c = await connect({ password: "jwt" });
    expect(await c.simpleQuery("TIMELINE_STATUS")).toEqual({
      columns: ["flush_lsn", "commit_lsn"],
      rows: [["0/169AD58", "0/169AD58"]],
      command: "TIMELINE_STATUS",
    });
    sk.setStatus(null);
    expect((await c.simpleQuery("TIMELINE_STATUS")).rows).toEqual([]);
    await c.close();
    expect(sk.requests.map((r) => r.startup)).toEqual([
      { client_encoding: "UTF8", user: "no_user", options: OPTIONS },
      { client_encoding: "UTF8", user: "no_user", options: OPTIONS },
    ]);
    expect(sk.rejections).toEqual([]);
  });

  test("rejects wrong options, extra startup parameters, other queries, wrong tokens", async () => {
    sk = await startFakeSafekeeper({
      tenantId: TENANT,
      timelineId: TIMELINE,
      token: "jwt",
      status: { flush: "0/1", commit: "0/1" },
    });
    const e1 = await connect({ password: "jwt", options: `-c tenant_id=${TENANT}` }).catch(
      (e) => e,
    );
    expect(e1).toBeInstanceOf(PqError);
    const e2 = await connect({ password: "jwt", applicationName: "compute_ctl" }).catch((e) => e);
    expect(e2).toBeInstanceOf(PqError);
    const e3 = await connect({ password: "wrong" }).catch((e) => e);
    expect(e3).toBeInstanceOf(PqError);
    const c = await connect({ password: "jwt" });
    const e4 = await c.simpleQuery("timeline_status").catch((e) => e);
    expect(e4).toBeInstanceOf(PqError);
    await c.close();
    expect(sk.rejections).toEqual([
      `options must be "${OPTIONS}", got "-c tenant_id=${TENANT}"`,
      "unexpected startup parameters [client_encoding,user,options,application_name] (expected client_encoding,user,options)",
      "password authentication failed: wrong token",
      'unexpected Query "timeline_status" (expected Query "TIMELINE_STATUS")',
    ]);
  });

  test("standalone mode prints its port and serves", async () => {
    const p = Bun.spawn(
      [
        process.execPath,
        "test/fakes/safekeeper.ts",
        JSON.stringify({
          tenantId: TENANT,
          timelineId: TIMELINE,
          status: { flush: "0/2", commit: "0/2" },
        }),
      ],
      { stdout: "pipe", stderr: "inherit" },
    );
    try {
      const reader = p.stdout.getReader();
      const first = await Promise.race([
        reader.read(),
        Bun.sleep(10_000).then(() => {
          throw new Error("no port line within 10 s");
        }),
      ]);
      const { port } = JSON.parse(new TextDecoder().decode(first.value).split("\n")[0] as string);
      const c = await PqConnection.connect({
        host: "127.0.0.1",
        port,
        user: "no_user",
        options: OPTIONS,
        timeoutMs: 2000,
      });
      expect((await c.simpleQuery("TIMELINE_STATUS")).rows).toEqual([["0/2", "0/2"]]);
      await c.close();
      reader.releaseLock();
    } finally {
      p.kill();
      await p.exited;
    }
  });
});
