// The basebackup child's contract, with the child run from source (`bun src/main.ts` with
// COMPUTE_CTL_INTERNAL_ROLE=basebackup) against the strict fake pageserver: an attempt in the
// child ends exactly as the same attempt in this process (metrics, files, and the error chain to
// the byte), its error keeps the errno fields the retry loop decides on, the deadline's error
// names the bytes received, and the child exits at once when its parent's pipe closes.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { formatChain, formatOneLine, withContext } from "../../../src/errors.ts";
import {
  basebackupCommand,
  getBasebackup,
  libpqBasebackupSource,
  tryGetBasebackup,
} from "../../../src/storage/basebackup.ts";
import {
  attemptInChild,
  decodeError,
  encodeError,
  INTERNAL_ROLE_ENV,
  PARENT_GONE_EXIT,
} from "../../../src/storage/basebackup-child.ts";
import { TarError } from "../../../src/storage/untar.ts";
import { isDiskFull, withPath } from "../../../src/util/fs-write.ts";
import { basebackupTemplate } from "../../fakes/basebackup-template.ts";
import {
  type FakePageserver,
  type PageserverFaults,
  startFakePageserver,
} from "../../fakes/pageserver.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, makeUserDir } from "../../support/proc.ts";

const TENANT = "9ef87a5bf0d92544f6fafeeb3239695c";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";
const MAIN = resolve(import.meta.dir, "../../../src/main.ts");
/** This checkout's entry, run by this bun: the child as `bun src/main.ts` starts it. */
const launcher = { command: [process.execPath, MAIN] };

const servers: FakePageserver[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
  await cleanup();
});

async function pageserver(faults: PageserverFaults = {}) {
  const { tarGzPath } = await basebackupTemplate();
  const gzBytes = await Bun.file(tarGzPath).bytes();
  const ps = await startFakePageserver({
    basebackup: () => gzBytes,
    token: "storage-token",
    tenantId: TENANT,
    timelineId: TIMELINE,
    faults,
  });
  servers.push(ps);
  return { ps, gzBytes };
}

function job(port: number) {
  return {
    kind: "libpq" as const,
    connstring: `postgresql://cloud_admin@127.0.0.1:${port}`,
    token: "storage-token",
    mode: "primary" as const,
    command: basebackupCommand({
      tenantId: TENANT,
      timelineId: TIMELINE,
      lsn: "0/0",
      mode: "primary",
    }),
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("the error transport", () => {
  test("a chain comes back with the same text and errno fields", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), {
      code: "ENOSPC",
      errno: -28,
      syscall: "write",
    });
    const err = withContext(
      "failed to get basebackup@0/0",
      withContext("connection failed", withPath(enospc, "/pgdata/pg_wal/000000010000000000000001")),
    );
    const back = decodeError(JSON.parse(JSON.stringify(encodeError(err))));
    expect(formatOneLine(back)).toBe(formatOneLine(err));
    expect(formatChain(back)).toBe(formatChain(err));
    expect(isDiskFull(back)).toBe(true);
    const leaf = (back as Error).cause as Error;
    expect((leaf.cause as NodeJS.ErrnoException | undefined)?.path).toBe(
      "/pgdata/pg_wal/000000010000000000000001",
    );
  });

  test("a cause already in its parent's message, a non-Error cause, a named error", () => {
    const inner = new TarError('refusing absolute path "/etc/passwd"');
    const dup = new Error(`extract: ${inner.message}`, { cause: inner });
    const odd = new Error("outer", { cause: "a string thrown" });
    for (const err of [dup, odd, inner]) {
      const back = decodeError(encodeError(err));
      expect(formatChain(back)).toBe(formatChain(err));
    }
    expect((decodeError(encodeError(inner)) as Error).name).toBe(inner.name);
  });
});

describe("an attempt in the child (bun src/main.ts)", () => {
  test("unpacks the basebackup and reports its metrics and first byte", async () => {
    const { ps, gzBytes } = await pageserver();
    const pgdata = await makeUserDir("bb-child-");
    let firstBytes = 0;
    const m = await attemptInChild(launcher, {
      job: job(ps.port),
      peer: `127.0.0.1:${ps.port}`,
      pgdata,
      timeoutMs: 60_000,
      onFirstByte: () => firstBytes++,
    });
    expect(ps.rejections).toEqual([]);
    expect(ps.requests).toHaveLength(1);
    expect(m.basebackupBytes).toBe(gzBytes.length);
    expect(m.pageserverConnectMicros).toBeGreaterThan(0);
    expect(m.basebackupMs).toBeGreaterThan(0);
    expect(firstBytes).toBe(1);
    expect(existsSync(join(pgdata, "global", "pg_control"))).toBe(true);
  }, 60_000);

  for (const [what, faults] of [
    ["a reset mid-stream", { resetAfterBytes: 20_000 }],
    ["CopyInResponse instead of CopyOutResponse", { wrongMessage: "copy-in" }],
    ["a truncated gzip stream", { truncateGzip: true }],
    ["an ErrorResponse after the data", { errorAfterData: true }],
  ] as [string, PageserverFaults][]) {
    test(`${what}: the same error chain as in this process`, async () => {
      const { ps } = await pageserver(faults);
      const inProcess = await rejection(
        tryGetBasebackup(libpqBasebackupSource(job(ps.port)), await makeUserDir("bb-in-"), {
          timeoutMs: 60_000,
        }),
      );
      const inChild = await rejection(
        attemptInChild(launcher, {
          job: job(ps.port),
          peer: `127.0.0.1:${ps.port}`,
          pgdata: await makeUserDir("bb-child-"),
          timeoutMs: 60_000,
        }),
      );
      expect(formatChain(inChild)).toBe(formatChain(inProcess));
      expect(ps.rejections).toEqual([]);
    }, 60_000);
  }

  test("nobody listening: the connect error, as in this process", async () => {
    const port = await freePort();
    const inProcess = await rejection(
      tryGetBasebackup(libpqBasebackupSource(job(port)), await makeUserDir("bb-in-"), {
        timeoutMs: 60_000,
      }),
    );
    const inChild = await rejection(
      attemptInChild(launcher, {
        job: job(port),
        peer: `127.0.0.1:${port}`,
        pgdata: await makeUserDir("bb-child-"),
        timeoutMs: 60_000,
      }),
    );
    expect(formatChain(inChild)).toBe(formatChain(inProcess));
    expect(formatOneLine(inChild)).toStartWith(`could not connect to 127.0.0.1:${port}`);
  }, 60_000);

  test("the deadline: the child stops and names the bytes it received", async () => {
    const { ps } = await pageserver({ trickleMs: 50 });
    const started = performance.now();
    const err = await rejection(
      attemptInChild(launcher, {
        job: job(ps.port),
        peer: `127.0.0.1:${ps.port}`,
        pgdata: await makeUserDir("bb-child-"),
        timeoutMs: 1500,
      }),
    );
    expect(performance.now() - started).toBeLessThan(1500 + 5_000);
    expect(formatOneLine(err)).toMatch(
      new RegExp(
        `^basebackup from 127\\.0\\.0\\.1:${ps.port} not complete after 1500 ms \\(\\d+ bytes of it received\\)$`,
      ),
    );
  }, 60_000);

  test("getBasebackup with a launcher retries attempts in children, with the same context", async () => {
    const { ps } = await pageserver({ refuseConnections: 1 });
    const pgdata = await makeUserDir("bb-child-retry-");
    const m = await getBasebackup({
      source: libpqBasebackupSource(job(ps.port)),
      pgdata,
      lsn: "0/0",
      retries: 1,
      sleep: async () => undefined,
      child: launcher,
    });
    expect(m.attempts).toBe(2);
    expect(existsSync(join(pgdata, "global", "pg_control"))).toBe(true);
  }, 60_000);
});

describe("a child that does not keep the contract", () => {
  test("silent past the deadline: killed after the grace, the deadline's error made here", async () => {
    const port = await freePort();
    const started = performance.now();
    const err = await rejection(
      attemptInChild(
        { command: ["sleep", "60"], abortGraceMs: 200 },
        {
          job: job(port),
          peer: `127.0.0.1:${port}`,
          pgdata: await makeUserDir("bb-child-"),
          timeoutMs: 500,
        },
      ),
    );
    expect(formatOneLine(err)).toBe(
      `no basebackup connection from 127.0.0.1:${port} within 500 ms`,
    );
    expect(performance.now() - started).toBeLessThan(10_000);
  }, 30_000);

  test("gone without a report: its exit status", async () => {
    const err = await rejection(
      attemptInChild(
        { command: ["false"] },
        {
          job: job(1),
          peer: "127.0.0.1:1",
          pgdata: await makeUserDir("bb-child-"),
          timeoutMs: 10_000,
        },
      ),
    );
    expect(formatOneLine(err)).toMatch(
      /^the basebackup child process \(pid \d+\) ended with exit code 1 before it reported$/,
    );
  }, 30_000);
});

describe("the child process itself", () => {
  test("exits at once when its parent's pipe closes, mid-attempt", async () => {
    const { ps } = await pageserver({ silent: true });
    const child = Bun.spawn([process.execPath, MAIN], {
      env: { ...process.env, [INTERNAL_ROLE_ENV]: "basebackup" },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    child.stdin.write(
      `${JSON.stringify({ source: job(ps.port), pgdata: await makeUserDir("bb-child-eof-"), timeoutMs: 600_000 })}\n`,
    );
    child.stdin.flush();
    // Connecting or waiting on the silent peer: then the pipe closes, as when compute_ctl dies.
    await Bun.sleep(1000);
    expect(child.exitCode).toBeNull();
    child.stdin.end();
    const closedAt = performance.now();
    expect(await child.exited).toBe(PARENT_GONE_EXIT);
    expect(performance.now() - closedAt).toBeLessThan(3_000);
  }, 60_000);

  test("without a job (stdin closed at once) it exits without doing anything", async () => {
    const child = Bun.spawn([process.execPath, MAIN], {
      env: { ...process.env, [INTERNAL_ROLE_ENV]: "basebackup" },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await child.exited).toBe(PARENT_GONE_EXIT);
    expect(await new Response(child.stdout).text()).toBe("");
  }, 30_000);
});
