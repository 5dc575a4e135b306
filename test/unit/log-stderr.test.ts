// The default log sink: a line reaches stderr at once, except lines logged inside deferLines,
// which are joined into one write at the end of the event-loop turn. These check that no line is
// lost or reordered by that, whatever way the process ends.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LOG = join(import.meta.dir, "../../src/log.ts");
const dir = mkdtempSync(join(tmpdir(), "log-stderr-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` in a child with `log`, `writeRaw` and `deferLines` imported; its stderr lines. */
async function child(body: string): Promise<{ code: number | null; lines: string[] }> {
  const script = `import { deferLines, log, writeRaw } from ${JSON.stringify(LOG)};\n${body}`;
  const p = Bun.spawn(["bun", "-e", script], { stdout: "ignore", stderr: "pipe" });
  const text = await new Response(p.stderr).text();
  await p.exited;
  return { code: p.exitCode, lines: text.split("\n").filter((l) => l !== "") };
}

const messages = (lines: string[]) =>
  lines.filter((l) => / INFO /.test(l)).map((l) => l.replace(/^\S+Z {2}INFO /, ""));

/**
 * Runs `body` as a child script whose stderr goes through `reader` (a shell pipeline that starts
 * late): what the reader printed, and how much the child's RSS grew while it logged.
 */
async function behindSlowReader(
  body: string,
  reader: string,
): Promise<{ output: string; grown: number }> {
  const dir = mkdtempSync(join(tmpdir(), "log-stderr-"));
  try {
    const out = join(dir, "rss");
    const script = join(dir, "child.ts");
    writeFileSync(
      script,
      `import { writeFileSync } from "node:fs";
const before = process.memoryUsage.rss();
${body}
writeFileSync(${JSON.stringify(out)}, String(process.memoryUsage.rss() - before));
`,
    );
    const p = Bun.spawn(["sh", "-c", `bun ${script} 2>&1 >/dev/null | { ${reader}; }`], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const output = (await new Response(p.stdout).text()).trim();
    await p.exited;
    return { output, grown: Number(readFileSync(out, "utf8")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("stderr log sink", () => {
  test("a line is on stderr before the next statement runs", async () => {
    const path = join(dir, "stderr.txt");
    const script = `import { log } from ${JSON.stringify(LOG)};
      import { readFileSync } from "node:fs";
      log.info("written at once");
      process.stdout.write(readFileSync(${JSON.stringify(path)}, "utf8").includes("written at once") ? "yes" : "no");`;
    const p = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: openSync(path, "w") });
    expect(await new Response(p.stdout).text()).toBe("yes");
    await p.exited;
    expect(readFileSync(path, "utf8")).toContain("written at once");
  });

  test("deferred lines just before process.exit are written, in order", async () => {
    const r = await child(
      `deferLines(() => { log.info("one"); log.info("two"); }); deferLines(() => log.info("three")); process.exit(3);`,
    );
    expect(r.code).toBe(3);
    expect(messages(r.lines)).toEqual(["one", "two", "three"]);
  });

  test("deferred lines just before an uncaught exception are written", async () => {
    const r = await child(
      `deferLines(() => log.info("before the crash")); throw new Error("crash");`,
    );
    expect(r.code).not.toBe(0);
    expect(messages(r.lines)).toEqual(["before the crash"]);
    expect(r.lines.some((l) => l.includes("crash"))).toBe(true);
  });

  test("a deferred burst larger than the buffer keeps every line, in order, one per line", async () => {
    const r = await child(
      `deferLines(() => { for (let i = 0; i < 5000; i++) log.info("line " + i, { pad: "x".repeat(40) }); });`,
    );
    expect(r.code).toBe(0);
    const got = messages(r.lines);
    expect(got.length).toBe(5000);
    got.forEach((m, i) => {
      expect(m).toBe(`line ${i} pad=${"x".repeat(40)}`);
    });
  });

  test("deferred, immediate and raw lines keep the order they were logged in", async () => {
    const r = await child(`
      deferLines(() => log.info("a"));
      writeRaw("PG: raw 1");
      deferLines(() => log.info("b"));
      await Bun.sleep(5);
      deferLines(() => log.info("c"));
      setImmediate(() => { log.info("d"); writeRaw("PG: raw 2"); });
      await Bun.sleep(5);
      deferLines(() => log.info("e"));
    `);
    expect(r.code).toBe(0);
    expect(r.lines.map((l) => l.replace(/^\S+Z {2}INFO /, ""))).toEqual([
      "a",
      "PG: raw 1",
      "b",
      "c",
      "d",
      "PG: raw 2",
      "e",
    ]);
  });

  test("a reader slower than the log holds the writer back instead of filling its memory", async () => {
    // 200 MB of log lines through a pipe whose reader starts only after 3 s: the writer must
    // wait for it (its RSS stays flat), not queue the text in memory as it did (found by the
    // soak: ~300 MiB a minute of access log behind a busy reader).
    const { output, grown } = await behindSlowReader(
      `import { log } from ${JSON.stringify(LOG)};
const pad = "x".repeat(1000);
for (let turn = 0; turn < 200; turn++) {
  for (let i = 0; i < 1000; i++) log.info("line", { pad });
  await new Promise((r) => setImmediate(r));
}`,
      "sleep 3; wc -c",
    );
    expect(Number(output)).toBeGreaterThan(200_000_000);
    expect(grown).toBeLessThan(50 * 1024 * 1024);
  }, 60_000);

  test("deferred lines wait for a slow reader in order, with a bounded backlog", async () => {
    const { output, grown } = await behindSlowReader(
      `import { deferLines, log } from ${JSON.stringify(LOG)};
const pad = "x".repeat(1000);
let n = 0;
for (let turn = 0; turn < 100; turn++) {
  deferLines(() => { for (let i = 0; i < 500; i++) log.info("line " + n++, { pad }); });
  await new Promise((r) => setImmediate(r));
}`,
      "sleep 2; grep -o 'line [0-9]*' | awk '$2 != NR - 1 { bad = 1 } END { print bad ? -1 : NR }'",
    );
    expect(Number(output)).toBe(50_000);
    expect(grown).toBeLessThan(50 * 1024 * 1024);
  }, 60_000);
});
