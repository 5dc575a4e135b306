// Hostile peers against the compiled binary: a pageserver that sends 1 byte a second, one that
// resets mid-stream, ones that send well-formed messages of the wrong type, safekeepers that
// accept and never answer, an endpoint storage that never finishes a body (or never answers a
// PUT), and an extension server that sends archive bombs and a path traversal. Each ends in its
// documented bound (README, "Bounds on hostile peers") with a one-line error naming the peer and
// what happened, and all the while /status is polled and must answer within 1 s.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  relocatedPgTree,
  startFakeExtensionServer,
  type TarSpecEntry,
  tarFileHeader,
  tarZst,
} from "../fakes/extension-server.ts";
import { startFakeSafekeeper } from "../fakes/safekeeper.ts";
import type { Json } from "../support/compute.ts";
import { jsonOf } from "../support/compute.ts";
import { endpointStorageFixture } from "../support/lfc.ts";
import { cleanup, makeUserDir, RUN_AS, waitFor } from "../support/proc.ts";
import { type StackOptions, TENANT, TIMELINE } from "../support/stack.ts";
import {
  expectNothingLeft,
  type Started,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";
import { zstdZeroBomb } from "../support/zstd-bomb.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

/** The longest /status may take while a peer misbehaves (a loaded 2-core machine). */
const API_BOUND_MS = 1000;

/**
 * Polls /status every 100 ms until stopped; each answer's latency is kept. A request that does
 * not answer within 5 s counts as 5 s.
 */
function watchApi(s: Started) {
  const latencies: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = performance.now();
      try {
        const r = await s.compute.get("/status", s.token, { signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        latencies.push(performance.now() - t);
      } catch (err) {
        // The compute exited (a failed start ends the process): polling is over.
        if ((err as Error).name !== "TimeoutError") break;
        latencies.push(5000);
      }
      await Bun.sleep(100);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { polls: latencies.length, maxMs: Math.max(0, ...latencies) };
    },
  };
}

async function expectApiAnswered(w: ReturnType<typeof watchApi>, minPolls: number) {
  const { polls, maxMs } = await w.stop();
  console.log(`/status while the peer misbehaved: ${polls} polls, slowest ${maxMs.toFixed(0)} ms`);
  expect(polls).toBeGreaterThanOrEqual(minPolls);
  expect(maxMs).toBeLessThan(API_BOUND_MS);
}

/** Starts a Replica (no sync-safekeepers) whose pageserver has `faults`, and watches the API. */
async function startAgainstPageserver(
  faults: StackOptions["pageserverFaults"],
  env: Record<string, string>,
) {
  const s = await start({ mode: "Replica", pageserverFaults: faults, env });
  return { s, watch: watchApi(s) };
}

/** The /status `error` of a failed start: the context, then each cause (the reference's form). */
function chain(context: string, ...causes: string[]): string {
  return `${context}\n\nCaused by:\n${causes.map((c, i) => `    ${i}: ${c}`).join("\n")}`;
}

/** A failed start: the error, exit 1, nothing of the run left. */
async function expectFailedStart(s: Started, watch: ReturnType<typeof watchApi>, minPolls = 1) {
  const st = await waitStatus(s, "failed");
  await expectApiAnswered(watch, minPolls);
  expect(await s.compute.exited).toBe(1);
  await expectNothingLeft(s);
  await s.stack.stop();
  return st.error as string;
}

describe("a hostile pageserver", () => {
  test("1 byte a second: each attempt ends at its deadline, then failed, exit 1", async () => {
    const { s, watch } = await startAgainstPageserver(
      { trickleMs: 1000 },
      {
        COMPUTE_CTL_TESTING_BASEBACKUP_TIMEOUT_MS: "2500",
        NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "1",
      },
    );
    const port = s.stack.pageserver.port;
    const error = await expectFailedStart(s, watch, 20);
    expect(error).toBe(
      chain(
        "failed to get basebackup@0/0",
        `basebackup from 127.0.0.1:${port} not complete after 2500 ms (0 bytes of it received)`,
      ),
    );
    // Both attempts reached the pageserver, and each was cut at its own deadline.
    expect(s.stack.pageserver.requests).toHaveLength(2);
    expect(s.compute.stderr.text).toContain(
      `Failed to get basebackup: basebackup from 127.0.0.1:${port} not complete after 2500 ms (0 bytes of it received) (attempt 0/1)`,
    );
    expect(s.stack.pageserver.rejections).toEqual([]);
  });

  test("a reset mid-stream: a failed attempt, retried, then failed, exit 1", async () => {
    const { s, watch } = await startAgainstPageserver(
      { resetAfterBytes: 20_000 },
      { NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "1" },
    );
    const port = s.stack.pageserver.port;
    const error = await expectFailedStart(s, watch);
    expect(error).toBe(
      chain(
        "failed to get basebackup@0/0",
        `connection to 127.0.0.1:${port} failed`,
        "ECONNRESET: connection reset by peer, read",
      ),
    );
    expect(s.stack.pageserver.requests).toHaveLength(2);
    expect(s.stack.pageserver.rejections).toEqual([]);
  });

  for (const [wrong, expected] of [
    [
      "copy-in",
      "unexpected message CopyInResponse ('G') from 127.0.0.1:PORT (expected CopyOutResponse)",
    ],
    ["data-row", "unexpected message DataRow ('D') from 127.0.0.1:PORT in a COPY OUT stream"],
  ] as const) {
    test(`a well-formed ${wrong} message where the copy belongs: failed, exit 1`, async () => {
      const { s, watch } = await startAgainstPageserver({ wrongMessage: wrong }, {});
      const error = await expectFailedStart(s, watch);
      expect(error).toBe(
        chain(
          "failed to get basebackup@0/0",
          expected.replace("PORT", String(s.stack.pageserver.port)),
        ),
      );
    });
  }

  test("endless NoticeResponses instead of the data: the attempt's deadline, failed", async () => {
    const { s, watch } = await startAgainstPageserver(
      { wrongMessage: "notices" },
      { COMPUTE_CTL_TESTING_BASEBACKUP_TIMEOUT_MS: "2000" },
    );
    const error = await expectFailedStart(s, watch, 8);
    expect(error).toBe(
      chain(
        "failed to get basebackup@0/0",
        `basebackup from 127.0.0.1:${s.stack.pageserver.port} not complete after 2000 ms (0 bytes of it received)`,
      ),
    );
  });

  test("accepts and never answers: the connect's deadline, failed", async () => {
    const { s, watch } = await startAgainstPageserver(
      { silent: true },
      { COMPUTE_CTL_TESTING_BASEBACKUP_TIMEOUT_MS: "1500" },
    );
    const error = await expectFailedStart(s, watch, 5);
    expect(error).toBe(
      chain(
        "failed to get basebackup@0/0",
        `no basebackup connection from 127.0.0.1:${s.stack.pageserver.port} within 1500 ms`,
      ),
    );
  });
});

describe("safekeepers that accept and never answer", () => {
  test("the fast path gives up in 100 ms each; the bounded sync fails the start, exit 1", async () => {
    const silent = await startFakeSafekeeper({
      tenantId: TENANT,
      timelineId: TIMELINE,
      status: "hang",
      silent: true,
    });
    const mute = await Promise.all(
      [0, 1].map(() =>
        startFakeSafekeeper({ tenantId: TENANT, timelineId: TIMELINE, status: "hang" }),
      ),
    );
    const sks = [silent, ...mute];
    try {
      // --sync-safekeepers (Postgres's walproposer) against these safekeepers waits like they do:
      // the pgbin wrapper's sync hangs.
      const s = await start({
        mode: "Primary",
        sync: { hang: true },
        spec: { safekeeper_connstrings: sks.map((k) => k.addr) },
        env: {
          COMPUTE_CTL_TESTING_SYNC_SK_TIMEOUT_MS: "800",
          COMPUTE_CTL_TESTING_CHILD_GRACE_MS: "500",
        },
      });
      const watch = watchApi(s);
      const error = await expectFailedStart(s, watch, 20);
      expect(error).toBe(
        chain(
          "failed to sync safekeepers",
          "postgres --sync-safekeepers timed out after 800 ms (signal: 15 (SIGTERM))",
        ),
      );
      // Each safekeeper was asked, and given up on after the reference's 100 ms.
      expect(silent.connections).toBeGreaterThanOrEqual(1);
      // (Whether the query itself got out within those 100 ms depends on the machine's load.)
      for (const m of mute) expect(m.connections).toBeGreaterThanOrEqual(1);
      expect(mute.flatMap((m) => m.rejections)).toEqual([]);
      expect(s.compute.stderr.text).toMatch(
        /failed sync safekeepers check.*timed out after 100 ms/,
      );
      // The reference's retries (6 runs of the sync), then a Primary's sync on the way out: each
      // stopped at its bound.
      expect(await s.stack.pgbin.syncCalls()).toHaveLength(7);
      expect(s.compute.stderr.text).toContain("sync_safekeepers still failed after 5 retries");
      expect(s.compute.stderr.text).toContain(
        "failed to sync safekeepers on shutdown: postgres --sync-safekeepers timed out after 800 ms",
      );
    } finally {
      for (const k of sks) await k.stop();
    }
  });
});

describe("an endpoint storage that never finishes", () => {
  test("prewarm: a body that never ends; offload: a PUT never answered: failed, compute running", async () => {
    const es = await endpointStorageFixture({ seeded: true });
    const s = await start({
      template: { initSql: es.standinSql },
      spec: es.specFields,
      env: { COMPUTE_CTL_TESTING_ENDPOINT_STORAGE_TIMEOUT_MS: "2000" },
    });
    await waitStatus(s, "running");
    const url = `http://${es.storage.addr}/${TENANT}/${TIMELINE}/ep-local/lfc_state`;
    const watch = watchApi(s);

    es.storage.force({ method: "GET", stallBody: true });
    const t0 = performance.now();
    expect((await s.compute.post("/lfc/prewarm", s.token)).status).toBe(202);
    const prewarm = await settle(s, "/lfc/prewarm", "prewarming");
    expect(prewarm).toEqual({
      status: "failed",
      error: "getting request body from endpoint storage: timed out after 2000 ms",
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);

    es.storage.force({ method: "PUT", delayMs: 30_000 });
    expect((await s.compute.post("/lfc/offload", s.token)).status).toBe(202);
    const offload = await settle(s, "/lfc/offload", "offloading");
    expect(offload).toEqual({
      status: "failed",
      error: `writing to endpoint storage: error sending request for url (${url}): timed out after 2000 ms`,
    });

    await expectApiAnswered(watch, 20);
    expect((await statusOf(s)).status).toBe("running");
    expect(es.storage.violations).toEqual([]);
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await es.storage.stop();
    await s.stack.stop();
  });
});

async function settle(s: Started, path: string, busy: string): Promise<Json> {
  return waitFor(
    async () => {
      const st = await jsonOf(s.compute.get(path, s.token));
      return st.status === busy ? undefined : st;
    },
    { what: `${path} to settle`, timeoutMs: 15_000 },
  );
}

describe("an extension server that sends archive bombs", () => {
  test("each refused with a 500 naming the bound, nothing installed, memory bounded, compute running", async () => {
    const root = await makeUserDir("pgtree-");
    const tree = relocatedPgTree(root);
    if (RUN_AS) Bun.spawnSync(["chown", "-R", `${RUN_AS.uid}:${RUN_AS.gid}`, root]);
    const pkglib = join(root, "usr/lib/postgresql/15/lib");
    const gateway = startFakeExtensionServer();
    const arch = process.arch === "arm64" ? "arm64" : "amd64";
    const put = (ext: string, bytes: Uint8Array) =>
      gateway.archives.set(`latest/${arch}/v15/extensions/${ext}.tar.zst`, bytes);

    const GiB = 1 << 30;
    // 144 KiB that unpack to one 8 GiB file of zeros.
    put("huge", zstdZeroBomb(tarFileHeader("lib/huge.so", 8 * GiB - 1), 8 * GiB - 1));
    // 60,000 empty files (the cap is 50,000).
    const many: TarSpecEntry[] = [];
    for (let i = 0; i < 60_000; i++) many.push({ type: "file", path: `lib/m${i}.so`, data: "" });
    put("many", tarZst(many));
    put(
      "escape",
      tarZst([
        { type: "file", path: "lib/fine.so", data: "x" },
        { type: "file", path: "lib/../../../../escaped.so", data: "x" },
      ]),
    );
    const exts = ["huge", "many", "escape"];

    const s = await start({
      realBindir: dirname(tree.pgbin),
      spec: {
        remote_extensions: {
          public_extensions: exts,
          custom_extensions: null,
          library_index: {},
          extension_data: Object.fromEntries(
            exts.map((e) => [e, { control_data: {}, archive_path: "" }]),
          ),
        },
      },
      env: {},
      extraArgs: ["--remote-ext-base-url", gateway.baseUrl],
    });
    await waitStatus(s, "running");
    const watch = watchApi(s);

    const expected: Record<string, string> = {
      huge: `archive expands to more than ${GiB} bytes (entry 'lib/huge.so' of ${8 * GiB - 1} bytes at byte 0)`,
      many: "archive has more than 50000 entries",
      escape: "refusing path with '..' in archive: 'lib/../../../../escaped.so'",
    };
    for (const ext of exts) {
      const r = await s.compute.post(`internal:/extension_server/${ext}?is_library=false`);
      expect(r.status).toBe(500);
      expect(r.headers.get("content-type")).toContain("application/json");
      expect(await r.json()).toEqual({ error: expected[ext] });
    }
    await expectApiAnswered(watch, 1);

    // Nothing of any refused archive was written.
    for (const f of ["huge.so", "m0.so", "m59999.so", "fine.so"]) {
      expect(existsSync(join(pkglib, f))).toBe(false);
    }
    expect(existsSync(join(root, "usr/lib/postgresql/escaped.so"))).toBe(false);
    // The 8 GiB file was refused at its header, not unpacked into memory first.
    const hwm = /VmHWM:\s+(\d+) kB/.exec(
      readFileSync(`/proc/${s.compute.proc.pid}/status`, "utf8"),
    );
    console.log(
      `compute_ctl's peak RSS after the bombs: ${Math.round(Number(hwm?.[1]) / 1024)} MiB`,
    );
    expect(Number(hwm?.[1]) * 1024).toBeLessThan(512 << 20);

    expect((await statusOf(s)).status).toBe("running");
    expect(gateway.violations).toEqual([]);
    await terminate(s, "immediate");
    expect(await s.compute.exited).toBe(0);
    await gateway.stop();
    await s.stack.stop();
  });
});
