// Hostile HTTP clients against a running compute (compiled binary): 64 KiB headers, invalid
// UTF-8 in paths and queries, a pg_dump-option-shaped `database`, extension_server paths with
// `..`, encoded slashes and NUL, slow-header and slow-body clients, and many idle connections
// (HOSTILE_IDLE_CONNECTIONS, default 5,000, capped below the open-file limit). Each gets a 4xx
// (or is refused), never a 5xx; meanwhile /status answers other clients within 1 s, and
// Postgres is untouched (same backend count, still answering).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import type { Socket } from "bun";
import { knob } from "../support/fuzz.ts";
import { cleanup } from "../support/proc.ts";
import { psql, type Started, start, waitStatus } from "../support/started.ts";

setDefaultTimeout(180_000);
afterAll(cleanup);

const IDLE = knob("HOSTILE_IDLE_CONNECTIONS", 5000);

/** Sends raw bytes and returns what came back until the peer closed or `ms` passed. */
async function raw(port: number, data: Uint8Array | string, ms = 1500): Promise<string> {
  let out = "";
  let done: () => void = () => {};
  const closed = new Promise<void>((r) => {
    done = r;
  });
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        out += Buffer.from(d).toString("latin1");
      },
      close() {
        done();
      },
      error() {
        done();
      },
    },
  });
  sock.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
  await Promise.race([closed, Bun.sleep(ms)]);
  sock.end();
  return out;
}

const statusOf = (resp: string) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(resp)?.[1] ?? 0);

async function statusLatency(s: Started): Promise<number> {
  const t0 = performance.now();
  const r = await s.compute.get("/status", s.token, { signal: AbortSignal.timeout(5000) });
  expect(r.status).toBe(200);
  await r.arrayBuffer();
  return performance.now() - t0;
}

async function backends(s: Started): Promise<string> {
  return psql(
    s,
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> 'psql'",
  );
}

describe("hostile clients", () => {
  test("malformed requests get a 4xx; others keep normal latency; Postgres untouched", async () => {
    const s = await start();
    await waitStatus(s, "running");
    // The start's scan of installed extensions holds a connection of its own for a while after
    // `running`; the count is taken once it has logged its result and closed it.
    const scanned = performance.now() + 60_000;
    while (!s.compute.stderr.text.includes("[NEON_EXT_STAT]") && performance.now() < scanned) {
      await Bun.sleep(50);
    }
    const port = s.compute.externalPort;
    const auth = `Authorization: Bearer ${s.token}\r\n`;
    const before = await backends(s);
    const cases: [string, string][] = [
      [
        "64 KiB header",
        `GET /status HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${"a".repeat(65536)}\r\n\r\n`,
      ],
      ["invalid UTF-8 in the path", `GET /status\xff\xfe HTTP/1.1\r\nHost: x\r\n${auth}\r\n`],
      [
        "invalid UTF-8 in a query parameter",
        `GET /database_schema?database=\xff\xc0 HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
      ],
      ["percent-encoded invalid UTF-8", `GET /%ff%fe?%c0=%ff HTTP/1.1\r\nHost: x\r\n${auth}\r\n`],
      [
        "extension_server ..",
        `POST /extension_server/../../etc/passwd HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 0\r\n\r\n`,
      ],
      [
        "extension_server encoded slash",
        `POST /extension_server/..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 0\r\n\r\n`,
      ],
      [
        "extension_server NUL",
        `POST /extension_server/a%00b HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 0\r\n\r\n`,
      ],
    ];
    for (const [what, req] of cases) {
      const resp = await raw(port, req);
      const code = statusOf(resp);
      // Bun's parser refuses some before routing (431, no body); an answer with a body is JSON.
      if (/content-type:/i.test(resp))
        expect(resp, what).toMatch(/content-type: application\/json/i);
      // A refused connection (no answer) is acceptable too; an answer must be a 4xx.
      if (resp !== "") expect(code, `${what}: ${resp.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      if (resp !== "") expect(code, `${what}: ${resp.slice(0, 200)}`).toBeLessThan(500);
      expect(await statusLatency(s), what).toBeLessThan(1000);
    }
    // A query on a route that takes none is ignored, invalid UTF-8 or not (as any server does).
    expect(
      statusOf(await raw(port, `GET /status?x=\xff\xc0 HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 1000)),
    ).toBe(200);
    // pg_dump options through the database parameter: never an option, never a file written.
    const marker = `${s.compute.dir}/dumped`;
    for (const db of [`--file=${marker}`, "-f/tmp/x", "--help", "-V"]) {
      const r = await s.compute.get(`/database_schema?database=${encodeURIComponent(db)}`, s.token);
      const body = await r.text();
      expect(r.status, `${db}: ${body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${db}: ${body.slice(0, 200)}`).toBeLessThan(500);
      expect(existsSync(marker)).toBe(false);
    }
    expect(await backends(s)).toBe(before);
    expect(await psql(s, "SELECT 1")).toBe("1");
  });

  test("slow-header and slow-body clients, then many idle connections", async () => {
    const s = await start();
    await waitStatus(s, "running");
    const port = s.compute.externalPort;
    // 20 clients trickling a header, 20 a body, one byte every 200 ms for 4 s.
    const trickle = async (head: string, body: string) => {
      const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      sock.write(head);
      for (const ch of body) {
        await Bun.sleep(200);
        sock.write(ch);
      }
      sock.end();
    };
    const slow = [
      ...Array.from({ length: 20 }, () => trickle("GET /sta", "tus HTTP/1.1\r\nHost: x\r\nX-A: b")),
      ...Array.from({ length: 20 }, () =>
        trickle(
          `POST /configure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
          '{"spec": {"format_'.padEnd(20, " "),
        ),
      ),
    ];
    const lat: number[] = [];
    for (let i = 0; i < 15; i++) {
      lat.push(await statusLatency(s));
      await Bun.sleep(200);
    }
    await Promise.all(slow);
    expect(Math.max(...lat), `latencies under slow clients: ${lat.map(Math.round)}`).toBeLessThan(
      1000,
    );
    const st = (await (await s.compute.get("/status", s.token)).json()) as { status: string };
    expect(st.status).toBe("running");

    // Idle connections: as many as asked, kept under the open-file limit of both processes.
    const limit = Number((await Bun.$`sh -c 'ulimit -n'`.text()).trim()) || 1024;
    const n = Math.min(IDLE, limit - 500);
    console.log(`idle connections: ${n} (asked ${IDLE}, ulimit -n ${limit})`);
    const socks: Socket[] = [];
    for (let i = 0; i < n; i++) {
      socks.push(
        await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } }).catch(
          (err) => {
            throw new Error(`connection ${i} of ${n}: ${err.message}`);
          },
        ),
      );
    }
    const idleLat: number[] = [];
    for (let i = 0; i < 10; i++) idleLat.push(await statusLatency(s));
    console.log(`/status with ${n} idle connections: max ${Math.max(...idleLat).toFixed(1)} ms`);
    expect(Math.max(...idleLat)).toBeLessThan(1000);
    for (const sock of socks) sock.end();
    expect(await psql(s, "SELECT 1")).toBe("1");
    expect(s.compute.proc.exitCode).toBeNull();
  });
});
