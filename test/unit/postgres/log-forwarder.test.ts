import { afterEach, describe, expect, test } from "bun:test";
import { configureLogging } from "../../../src/log.ts";
import { forwardPostgresLogs } from "../../../src/postgres/log-forwarder.ts";

const ZWSP = "\u200B";
const enc = new TextEncoder();

/** A stream the test feeds by hand, and the records the forwarder wrote (with write times). */
function harness(flushMs?: number) {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  const out: { text: string; at: number }[] = [];
  const t0 = performance.now();
  const done = forwardPostgresLogs(stream, {
    write: (text) => out.push({ text, at: performance.now() - t0 }),
    ...(flushMs !== undefined ? { flushMs } : {}),
  });
  return {
    out,
    texts: () => out.map((o) => o.text),
    send: (s: string | Uint8Array) => controller.enqueue(typeof s === "string" ? enc.encode(s) : s),
    end: async () => {
      controller.close();
      await done;
    },
    fail: async (err: Error) => {
      controller.error(err);
      await done;
    },
    elapsed: () => performance.now() - t0,
  };
}

const TS1 = "2025-07-31 12:00:00.123 UTC [42]";
const TS2 = "2025-07-31 12:00:01.456 UTC [42]";

describe("forwardPostgresLogs", () => {
  test("joins the lines of a multi-line record with U+200B behind PG:", async () => {
    const h = harness();
    h.send(`${TS1} ERROR:  syntax error at or near "x"\n\tLINE 1: x\n\t        ^\n`);
    await h.end();
    expect(h.texts()).toEqual([
      `PG:${TS1} ERROR:  syntax error at or near "x"${ZWSP}\tLINE 1: x${ZWSP}\t        ^\n`,
    ]);
  });

  test("a line that starts a new record flushes the previous one at once", async () => {
    const h = harness(10_000); // no timer flush in this test
    h.send(`${TS1} LOG:  one\n\tdetail\n`);
    await Bun.sleep(20);
    expect(h.out).toHaveLength(0);
    h.send(`${TS2} LOG:  two\n`);
    await Bun.sleep(20);
    expect(h.texts()).toEqual([`PG:${TS1} LOG:  one${ZWSP}\tdetail\n`]);
    await h.end();
    expect(h.texts()).toEqual([`PG:${TS1} LOG:  one${ZWSP}\tdetail\n`, `PG:${TS2} LOG:  two\n`]);
  });

  test("flushes after 100 ms without a new line, not before", async () => {
    const h = harness();
    h.send(`${TS1} LOG:  one\n`);
    // Continuations arriving every 30 ms keep the record open.
    for (let i = 0; i < 4; i++) {
      await Bun.sleep(30);
      h.send(`\tmore ${i}\n`);
    }
    const lastLineAt = h.elapsed();
    expect(h.out).toHaveLength(0);
    const deadline = performance.now() + 2000;
    while (h.out.length === 0 && performance.now() < deadline) await Bun.sleep(5);
    expect(h.texts()).toEqual([
      `PG:${TS1} LOG:  one${ZWSP}\tmore 0${ZWSP}\tmore 1${ZWSP}\tmore 2${ZWSP}\tmore 3\n`,
    ]);
    const gap = h.out[0]!.at - lastLineAt;
    expect(gap).toBeGreaterThanOrEqual(90);
    expect(gap).toBeLessThan(400);
    await h.end();
    expect(h.out).toHaveLength(1);
  });

  test("lines before the first timestamp form one record; EOF flushes", async () => {
    const h = harness();
    h.send("no timestamp\nstill none\n");
    h.send(`${TS1} LOG:  stamped\n`);
    await h.end();
    expect(h.texts()).toEqual([`PG:no timestamp${ZWSP}still none\n`, `PG:${TS1} LOG:  stamped\n`]);
  });

  test("a line split across chunks, CRLF endings and an unterminated last line", async () => {
    const h = harness();
    h.send("2025-07-31 12:0");
    h.send("0:00 UTC LOG:  split\r\n");
    h.send(`${TS2} LOG:  no newline at the end`);
    await h.end();
    expect(h.texts()).toEqual([
      "PG:2025-07-31 12:00:00 UTC LOG:  split\n",
      `PG:${TS2} LOG:  no newline at the end\n`,
    ]);
  });

  test("the timestamp must be at the start of the line", async () => {
    const h = harness();
    h.send(`${TS1} LOG:  a\n x ${TS2} not a record start\n2025-7-31 12:00:00 short month\n`);
    await h.end();
    expect(h.out).toHaveLength(1);
  });

  test("invalid UTF-8 is replaced and forwarding goes on", async () => {
    const h = harness();
    h.send(Uint8Array.of(...enc.encode(`${TS1} LOG:  bad `), 0xff, 0xfe, 0xc3, 0x0a));
    h.send(`${TS2} LOG:  next\n`);
    await h.end();
    expect(h.texts()).toEqual([
      `PG:${TS1} LOG:  bad \uFFFD\uFFFD\uFFFD\n`,
      `PG:${TS2} LOG:  next\n`,
    ]);
  });

  test("a read error flushes what was buffered and resolves", async () => {
    const h = harness(10_000);
    h.send(`${TS1} LOG:  before the error\n\tcontinued\npartial`);
    await h.fail(new Error("EIO"));
    expect(h.texts()).toEqual([
      `PG:${TS1} LOG:  before the error${ZWSP}\tcontinued${ZWSP}partial\n`,
    ]);
  });

  test("an empty stream writes nothing", async () => {
    const h = harness();
    await h.end();
    expect(h.out).toHaveLength(0);
  });

  describe("default sink", () => {
    afterEach(() => configureLogging({ sink: { write: (t) => process.stderr.write(t) } }));

    test("writes raw through log.ts", async () => {
      const lines: string[] = [];
      configureLogging({ sink: { write: (t) => lines.push(t) } });
      const stream = new Response(`${TS1} LOG:  hello\n\tworld\n`).body!;
      await forwardPostgresLogs(stream);
      expect(lines).toEqual([`PG:${TS1} LOG:  hello${ZWSP}\tworld\n`]);
    });
  });
});
