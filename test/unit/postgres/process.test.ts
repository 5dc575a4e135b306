// The Postgres process against real Postgres 15 (run as the postgres user when the tests are root),
// the pgbin wrapper for start delays, and raiseCoreLimit in child processes with lowered limits.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Children } from "../../../src/compute/children.ts";
import { configureLogging } from "../../../src/log.ts";
import {
  findCoreDumps,
  logCoreDumpBacktraces,
  maybeCgexec,
  type PostgresProcess,
  pgCtlReload,
  spawnPostgres,
  waitForPostgres,
} from "../../../src/postgres/process.ts";
import { makePgbinWrapper, REAL_PG_BINDIR } from "../../fakes/pgbin.ts";
import { freePort } from "../../support/ports.ts";
import {
  cleanup,
  makeUserDir,
  RUN_AS,
  scriptForChild,
  spawnAs,
  trackProcess,
} from "../../support/proc.ts";

const hasRealPg = existsSync(join(REAL_PG_BINDIR, "postgres"));
const REPO = join(import.meta.dir, "../../..");
const runAs = RUN_AS ?? undefined;
const ZWSP = "\u200B";

/** Runs a command as the test user to completion; throws with its output on failure. */
async function run(cmd: string[], env: Record<string, string> = {}): Promise<string> {
  const p = spawnAs(cmd, { env, detached: false });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${out}${err}`);
  return out;
}

let template = "";
let port = 0;

/** A fresh copy of the initdb'ed template cluster. */
async function freshPgdata(extraConf = ""): Promise<string> {
  const dir = await makeUserDir("pgdata-");
  const pgdata = join(dir, "data");
  await run(["cp", "-a", template, pgdata]);
  if (extraConf) appendFileSync(join(pgdata, "postgresql.conf"), extraConf);
  return pgdata;
}

/** Registers a postmaster for cleanup(), which stops it if a test failed before it did. */
function track(proc: PostgresProcess): PostgresProcess {
  trackProcess(proc);
  return proc;
}

async function stop(children: Children, proc: PostgresProcess): Promise<void> {
  children.forwardTermination();
  await children.drain(10_000);
  await proc.logsDone;
}

function psqlShow(socketDir: string, guc: string): Promise<string> {
  return psql(socketDir, `SHOW ${guc}`);
}

function psql(socketDir: string, sql: string): Promise<string> {
  return run([
    join(REAL_PG_BINDIR, "psql"),
    "-h",
    socketDir,
    "-p",
    String(port),
    "-U",
    "cloud_admin",
    "-d",
    "postgres",
    "-Atc",
    sql,
  ]).then((s) => s.trim());
}

beforeAll(async () => {
  if (!hasRealPg) return;
  const dir = await makeUserDir("pgtemplate-");
  template = join(dir, "data");
  await run([join(REAL_PG_BINDIR, "initdb"), "-D", template, "-U", "cloud_admin", "-A", "trust"]);
  port = await freePort();
  // The socket lives in PGDATA: no dependency on /var/run/postgresql.
  appendFileSync(
    join(template, "postgresql.conf"),
    `\nport = ${port}\nlisten_addresses = ''\nunix_socket_directories = '.'\n`,
  );
}, 60_000);

afterAll(cleanup, 30_000);

describe.skipIf(!hasRealPg)("spawnPostgres + waitForPostgres (real Postgres 15)", () => {
  test("becomes ready; NEON_AUTH_TOKEN in its env; PG: lines; reload changes a GUC", async () => {
    const pgdata = await freshPgdata();
    const children = new Children();
    const records: string[] = [];
    const proc = track(
      spawnPostgres({
        pgbin: join(REAL_PG_BINDIR, "postgres"),
        pgdata,
        token: "secret-token",
        children,
        extraEnv: { EXTRA_VAR: "x" },
        runAs,
        writeLog: (l) => records.push(l),
      }),
    );
    expect(children.find("postgres")).toBe(proc);
    await waitForPostgres({ proc, pgdata, timeoutMs: 30_000 });
    const pidFile = readFileSync(join(pgdata, "postmaster.pid"), "utf8").split("\n");
    expect(Number(pidFile[0])).toBe(proc.pid);
    expect(pidFile.at(-2)?.trim()).toBe("ready");

    const environ = readFileSync(`/proc/${proc.pid}/environ`, "utf8").split("\0");
    expect(environ).toContain("NEON_AUTH_TOKEN=secret-token");
    expect(environ).toContain("EXTRA_VAR=x");

    // Each forwarded record is one line: PG: + the default log_line_prefix timestamp.
    await Bun.sleep(150);
    const ready = records.find((r) => r.includes("database system is ready to accept connections"));
    expect(ready).toMatch(/^PG:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \S+ \[\d+\] LOG: {2}/);
    expect(records.every((r) => r.startsWith("PG:") && r.indexOf("\n") === r.length - 1)).toBe(
      true,
    );

    // A statement with a newline makes a real multi-line record: joined with U+200B.
    await expect(psql(pgdata, "SELECT\n1/0")).rejects.toThrow("division by zero");
    await Bun.sleep(150);
    // (Postgres indents continuation lines with a tab.)
    const statement = records.filter((r) => r.includes("STATEMENT"));
    expect(statement).toHaveLength(1);
    expect(statement[0]).toEndWith(`STATEMENT:  SELECT${ZWSP}\t1/0\n`);

    expect(await psqlShow(pgdata, "work_mem")).toBe("4MB");
    appendFileSync(join(pgdata, "postgresql.conf"), "work_mem = '7MB'\n");
    await pgCtlReload(join(REAL_PG_BINDIR, "pg_ctl"), pgdata, { runAs });
    let value = "";
    for (let i = 0; i < 50 && value !== "7MB"; i++) {
      await Bun.sleep(100);
      value = await psqlShow(pgdata, "work_mem");
    }
    expect(value).toBe("7MB");

    // Termination sends SIGINT (fast shutdown): exit 0, stderr forwarding ends.
    await stop(children, proc);
    expect(proc.exitCode).toBe(0);
    expect(children.size).toBe(0);
  }, 60_000);

  test("without a token NEON_AUTH_TOKEN is not added", async () => {
    const pgdata = await freshPgdata();
    const children = new Children();
    const saved = process.env.NEON_AUTH_TOKEN;
    delete process.env.NEON_AUTH_TOKEN;
    try {
      const proc = track(
        spawnPostgres({
          pgbin: join(REAL_PG_BINDIR, "postgres"),
          pgdata,
          token: null,
          children,
          runAs,
          writeLog: () => {},
        }),
      );
      await waitForPostgres({ proc, pgdata, timeoutMs: 30_000 });
      const environ = readFileSync(`/proc/${proc.pid}/environ`, "utf8");
      expect(environ).not.toContain("NEON_AUTH_TOKEN=");
      await stop(children, proc);
    } finally {
      if (saved !== undefined) process.env.NEON_AUTH_TOKEN = saved;
    }
  }, 60_000);

  test("a broken conf: Postgres exited unexpectedly with code 1", async () => {
    const pgdata = await freshPgdata("shared_buffers = 'bogus'\n");
    const children = new Children();
    const records: string[] = [];
    const proc = track(
      spawnPostgres({
        pgbin: join(REAL_PG_BINDIR, "postgres"),
        pgdata,
        token: null,
        children,
        runAs,
        writeLog: (l) => records.push(l),
      }),
    );
    const started = performance.now();
    const err = await waitForPostgres({ proc, pgdata, timeoutMs: 30_000 }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toBe("Postgres exited unexpectedly with code 1");
    // Caused by Postgres's own last FATAL, with the directory it names files relative to.
    expect((err?.cause as Error | undefined)?.message).toMatch(
      new RegExp(
        `^FATAL:  configuration file ".*postgresql.conf" contains errors \\(PGDATA ${pgdata}\\)$`,
      ),
    );
    expect(performance.now() - started).toBeLessThan(10_000);
    await proc.logsDone;
    expect(records.join("")).toContain("shared_buffers");
  }, 60_000);

  test("a signalled exit is code -1", async () => {
    const w = await makePgbinWrapper({});
    await w.setStartDelayMs(20_000);
    const pgdata = await freshPgdata();
    const children = new Children();
    const proc = track(
      spawnPostgres({ pgbin: w.pgbin, pgdata, token: null, children, runAs, writeLog: () => {} }),
    );
    setTimeout(() => proc.kill("SIGTERM"), 200);
    await expect(waitForPostgres({ proc, pgdata, timeoutMs: 10_000 })).rejects.toThrow(
      "Postgres exited unexpectedly with code -1",
    );
  }, 30_000);

  test("on timeout the child is killed and waited for", async () => {
    const w = await makePgbinWrapper({});
    await w.setStartDelayMs(20_000);
    const pgdata = await freshPgdata();
    const children = new Children();
    const proc = track(
      spawnPostgres({ pgbin: w.pgbin, pgdata, token: null, children, runAs, writeLog: () => {} }),
    );
    const started = performance.now();
    await expect(waitForPostgres({ proc, pgdata, timeoutMs: 500 })).rejects.toThrow(
      /^timed out while waiting for Postgres to start$/,
    );
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(490);
    expect(took).toBeLessThan(3_000);
    expect(proc.signalCode).toBe("SIGKILL");
    expect(existsSync(`/proc/${proc.pid}`)).toBe(false);
    expect(children.size).toBe(0);
    // Nothing of it is left: no process has PGDATA on its command line.
    const ps = Bun.spawnSync(["pgrep", "-f", pgdata]);
    expect(ps.stdout.toString().trim()).toBe("");
    expect(existsSync(join(pgdata, "postmaster.pid"))).toBe(false);
  }, 30_000);

  test("the wrapper execs the real postgres after its delay, keeping the pid", async () => {
    const w = await makePgbinWrapper({});
    await w.setStartDelayMs(300);
    const pgdata = await freshPgdata();
    const children = new Children();
    const proc = track(
      spawnPostgres({ pgbin: w.pgbin, pgdata, token: null, children, runAs, writeLog: () => {} }),
    );
    await waitForPostgres({ proc, pgdata, timeoutMs: 30_000 });
    expect(Number(readFileSync(join(pgdata, "postmaster.pid"), "utf8").split("\n")[0])).toBe(
      proc.pid,
    );
    // pg_config through the symlink still reports the real installation.
    expect((await run([join(w.bindir, "pg_config"), "--bindir"])).trim()).toBe(REAL_PG_BINDIR);
    await stop(children, proc);
    expect(proc.exitCode).toBe(0);
  }, 60_000);
});

describe("waitForPostgres on a hand-written postmaster.pid", () => {
  /** A stand-in child that stays alive, and a PGDATA we write the pid file into. */
  async function setup() {
    const pgdata = await makeUserDir("pidfile-");
    const proc = trackProcess(Bun.spawn(["sleep", "30"], { stdin: "ignore" }));
    return { pgdata, proc, pidPath: join(pgdata, "postmaster.pid") };
  }
  const lines = (status?: string) =>
    ["12345", "/data", "1700000000", "5432", "/tmp", "*", "  1234 5678", status]
      .filter((l) => l !== undefined)
      .join("\n") + "\n";

  test("ready only once the LAST line, trimmed, is `ready`; a write wakes it early", async () => {
    const { pgdata, proc, pidPath } = await setup();
    writeFileSync(pidPath, lines());
    let resolvedAt = 0;
    const p = waitForPostgres({ proc, pgdata, timeoutMs: 10_000 }).then(() => {
      resolvedAt = performance.now();
    });
    await Bun.sleep(250);
    writeFileSync(pidPath, lines("starting"));
    await Bun.sleep(250);
    writeFileSync(pidPath, `${lines("ready   ")}trailing\n`);
    await Bun.sleep(250);
    expect(resolvedAt).toBe(0);
    const wroteAt = performance.now();
    writeFileSync(pidPath, lines("ready   "));
    await p;
    expect(resolvedAt - wroteAt).toBeLessThan(150);
    proc.kill();
  });

  test("an empty or missing pid file is not ready; the timeout kills the child", async () => {
    const { pgdata, proc, pidPath } = await setup();
    writeFileSync(pidPath, "");
    await expect(waitForPostgres({ proc, pgdata, timeoutMs: 300 })).rejects.toThrow(
      "timed out while waiting for Postgres to start",
    );
    expect(proc.signalCode).toBe("SIGKILL");
  });

  test("a child that exits with a code is reported with it", async () => {
    const pgdata = await makeUserDir("pidfile-");
    const proc = trackProcess(Bun.spawn(["sh", "-c", "sleep 0.2; exit 3"], { stdin: "ignore" }));
    await expect(waitForPostgres({ proc, pgdata, timeoutMs: 5_000 })).rejects.toThrow(
      "Postgres exited unexpectedly with code 3",
    );
  });

  test("a PGDATA that cannot be watched still works by polling", async () => {
    const pgdata = join(await makeUserDir("pidfile-"), "not-yet");
    const proc = trackProcess(Bun.spawn(["sleep", "30"], { stdin: "ignore" }));
    setTimeout(() => {
      Bun.spawnSync(["mkdir", pgdata]);
      writeFileSync(join(pgdata, "postmaster.pid"), lines("ready"));
    }, 200);
    await waitForPostgres({ proc, pgdata, timeoutMs: 5_000 });
    proc.kill();
  });
});

describe.skipIf(!hasRealPg)("pgCtlReload", () => {
  test("a failing pg_ctl is only logged", async () => {
    const pgdata = await makeUserDir("noreload-");
    const lines: string[] = [];
    configureLogging({ sink: { write: (t) => lines.push(t) } });
    try {
      await pgCtlReload(join(REAL_PG_BINDIR, "pg_ctl"), pgdata, { runAs });
      await pgCtlReload("/nonexistent/pg_ctl", pgdata);
    } finally {
      configureLogging({ sink: { write: (t) => process.stderr.write(t) } });
    }
    expect(lines.some((l) => l.includes("WARN pg_ctl reload failed"))).toBe(true);
    expect(lines.some((l) => l.includes("WARN cannot run pg_ctl reload"))).toBe(true);
  });
});

describe("core dumps", () => {
  afterEach(() => configureLogging({ sink: { write: (t) => process.stderr.write(t) } }));

  test("findCoreDumps lists core and core.* only", async () => {
    const dir = await makeUserDir("cores-");
    for (const n of ["core", "core.123", "corefile", "xcore", "core.456"]) {
      writeFileSync(join(dir, n), "not really a core");
    }
    expect(await findCoreDumps(dir)).toEqual(
      ["core", "core.123", "core.456"].map((n) => join(dir, n)),
    );
    expect(await findCoreDumps(join(dir, "missing"))).toEqual([]);
  });

  test("logCoreDumpBacktraces logs and never throws", async () => {
    const dir = await makeUserDir("cores-");
    const core = join(dir, "core.1");
    writeFileSync(core, "garbage");
    const lines: string[] = [];
    configureLogging({ sink: { write: (t) => lines.push(t) } });
    await logCoreDumpBacktraces(join(REAL_PG_BINDIR, "postgres"), [core]);
    const text = lines.join("");
    expect(text).toContain(`core dump found: ${core}, collecting backtrace`);
    if (Bun.which("gdb")) expect(text).toContain("debugger stderr:");
  }, 60_000);
});

describe("cgexec and knobs", () => {
  test("AUTOSCALING puts the command under cgexec", () => {
    const saved = process.env.AUTOSCALING;
    try {
      delete process.env.AUTOSCALING;
      expect(maybeCgexec(["/pg/postgres", "-D", "/d"])).toEqual(["/pg/postgres", "-D", "/d"]);
      process.env.AUTOSCALING = "";
      expect(maybeCgexec(["/pg/postgres"])).toEqual([
        "cgexec",
        "-g",
        "memory:neon-postgres",
        "/pg/postgres",
      ]);
    } finally {
      if (saved === undefined) delete process.env.AUTOSCALING;
      else process.env.AUTOSCALING = saved;
    }
  });

  test("the knobs come from the environment, with defaults", async () => {
    const code = `import { pgKnobs } from ${JSON.stringify(join(REPO, "src/testing-knobs.ts"))}; console.log(JSON.stringify(pgKnobs));`;
    const read = async (env: Record<string, string>) => {
      const p = Bun.spawn([process.execPath, "-e", code], {
        env: { PATH: process.env.PATH ?? "", ...env },
        stdout: "pipe",
      });
      return JSON.parse(await new Response(p.stdout).text());
    };
    expect(await read({})).toEqual({
      pgReadyTimeoutMs: 60_000,
      syncSkTimeoutMs: 600_000,
      syncSkBackoffScale: 1,
    });
    expect(
      await read({
        COMPUTE_CTL_TESTING_PG_READY_TIMEOUT_MS: "1500",
        COMPUTE_CTL_TESTING_SYNC_SK_TIMEOUT_MS: "2000",
        COMPUTE_CTL_TESTING_SYNC_SK_BACKOFF_SCALE: "0.01",
      }),
    ).toEqual({ pgReadyTimeoutMs: 1500, syncSkTimeoutMs: 2000, syncSkBackoffScale: 0.01 });
  });
});

describe.skipIf(process.platform !== "linux")("raiseCoreLimit", () => {
  /**
   * Runs raiseCoreLimit() as the unprivileged test user under `ulimit` settings, and returns its
   * result and the core limits a child of it then has (soft, hard; from /proc/self/limits).
   */
  async function inChild(ulimits: string) {
    const code = `
      import { raiseCoreLimit } from ${JSON.stringify(join(REPO, "src/postgres/rlimit.ts"))};
      const result = raiseCoreLimit();
      const limits = Bun.spawnSync(["cat", "/proc/self/limits"]).stdout.toString();
      console.log(JSON.stringify({ result, limits }));`;
    // Bundled where the test user can read it: the checkout may not be readable for it.
    const file = join(await makeUserDir("rlimit-"), "child.ts");
    writeFileSync(file, code);
    const script = `${ulimits} && exec "$0" "$1"`;
    const p = spawnAs(["bash", "-c", script, process.execPath, await scriptForChild(file)], {
      detached: false,
    });
    const [out, err, exit] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    if (exit !== 0) throw new Error(`child failed (${exit}): ${out}${err}`);
    const { result, limits } = JSON.parse(out);
    const m = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(limits);
    return { result, soft: m?.[1], hard: m?.[2] };
  }

  const privileged = RUN_AS === null && process.getuid?.() === 0;

  test("unlimited hard limit: ok, and children get unlimited", async () => {
    const r = await inChild("ulimit -Hc unlimited && ulimit -Sc 0");
    expect(r.result).toEqual({ ok: true });
    expect([r.soft, r.hard]).toEqual(["unlimited", "unlimited"]);
  }, 30_000);

  test.skipIf(privileged)(
    "a lower hard limit: not ok, soft raised to the hard limit",
    async () => {
      const r = await inChild("ulimit -Hc 2048 && ulimit -Sc 0");
      expect(r.result.ok).toBe(false);
      expect(r.result.reason).toContain("EPERM");
      expect(r.result.reason).toContain(`hard limit ${2048 * 1024} bytes`);
      expect(r.result.reason).toContain("soft limit raised to the hard limit");
      expect([r.soft, r.hard]).toEqual([String(2048 * 1024), String(2048 * 1024)]);
    },
    30_000,
  );

  test.skipIf(privileged)(
    "a zero hard limit: not ok, nothing to raise",
    async () => {
      const r = await inChild("ulimit -Hc 0");
      expect(r.result).toEqual({
        ok: false,
        reason:
          "setrlimit(RLIMIT_CORE, unlimited) failed: EPERM (hard limit 0 bytes); soft limit already at it",
      });
      expect([r.soft, r.hard]).toEqual(["0", "0"]);
    },
    30_000,
  );
});
