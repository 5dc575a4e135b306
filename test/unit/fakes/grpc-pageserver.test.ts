// The fake gRPC pageserver is strict: driven here with raw node:http2 requests (not the client
// under test), it serves a well-formed call and refuses each thing the real one would refuse.
import { afterEach, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import { type FakeGrpcPageserver, startFakeGrpcPageserver } from "../../fakes/grpc-pageserver.ts";

const TENANT = "3aa8fcc61f6d357410b7de754b1d9001";
const TIMELINE = "de200bd42b49cc1814412c7e592dd6e9";
const GZ = Bun.gzipSync(new TextEncoder().encode("gzip bytes ".repeat(50_000)));

let ps: FakeGrpcPageserver | null = null;
afterEach(async () => {
  await ps?.stop();
  ps = null;
});

const frame = (msg: number[]) => Buffer.from([0, 0, 0, 0, msg.length, ...msg]);
// GetBaseBackupRequest{lsn: 0x169AD58, compression: GZIP}
const GOOD_BB = [0x08, 0xd8, 0xda, 0xa6, 0x0b, 0x20, 0x02];

interface Reply {
  status: string | undefined;
  message: string;
  body: Buffer;
}

async function call(
  path: string,
  body: Buffer,
  headers: Record<string, string | undefined> = {},
): Promise<Reply> {
  const session = http2.connect(`http://127.0.0.1:${(ps as FakeGrpcPageserver).port}`);
  try {
    const h: Record<string, string> = {
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      "neon-tenant-id": TENANT,
      "neon-timeline-id": TIMELINE,
      "neon-shard-id": "0000",
      authorization: "Bearer jwt",
    };
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) delete h[k];
      else h[k] = v;
    }
    const req = session.request(h);
    req.end(body);
    let status: string | undefined;
    let message = "";
    const take = (x: http2.IncomingHttpHeaders) => {
      if (x["grpc-status"] !== undefined) status = String(x["grpc-status"]);
      if (x["grpc-message"] !== undefined) message = decodeURIComponent(String(x["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    const parts: Buffer[] = [];
    for await (const d of req) parts.push(d as Buffer);
    return { status, message, body: Buffer.concat(parts) };
  } finally {
    session.close();
  }
}

/** The chunk payloads of a GetBaseBackup response body, concatenated. */
function chunks(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let o = 0;
  while (o < body.length) {
    const len = body.readUInt32BE(o + 1);
    const msg = body.subarray(o + 5, o + 5 + len);
    // field 1, length-delimited, varint length
    let p = 1;
    let n = 0;
    for (let shift = 0; ; shift += 7) {
      const b = msg[p++] as number;
      n |= (b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    expect(msg[0]).toBe(0x0a);
    out.push(msg.subarray(p, p + n));
    o += 5 + len;
  }
  return Buffer.concat(out);
}

async function start(extra: Partial<Parameters<typeof startFakeGrpcPageserver>[0]> = {}) {
  ps = await startFakeGrpcPageserver({
    basebackup: () => GZ,
    token: "jwt",
    tenantId: TENANT,
    timelineId: TIMELINE,
    faults: { chunkSize: 4096 },
    ...extra,
  });
  return ps;
}

describe("fake gRPC pageserver", () => {
  test("serves the basebackup in chunks, then status OK", async () => {
    await start();
    const r = await call("/page_api.PageService/GetBaseBackup", frame(GOOD_BB));
    expect(r.status).toBe("0");
    expect(Buffer.compare(chunks(r.body), Buffer.from(GZ))).toBe(0);
    expect(ps?.requests[0]?.fields).toEqual({ lsn: 0x169ad58n, compression: 2n });
    expect(ps?.rejections).toEqual([]);
  });

  test("LeaseLsn answers a Timestamp, or FAILED_PRECONDITION when not granted", async () => {
    await start({ lease: (lsn) => (lsn === 1n ? null : 1_800_000_000_500) });
    const ok = await call("/page_api.PageService/LeaseLsn", frame([0x08, 0x05]));
    expect(ok.status).toBe("0");
    // LeaseLsnResponse{expires{seconds: 1800000000, nanos: 500000000}}
    const msg = ok.body.subarray(5);
    expect(msg[0]).toBe(0x0a);
    expect(msg.includes(Buffer.from([0x10, 0x80, 0xca, 0xb5, 0xee, 0x01]))).toBe(true);
    const refused = await call("/page_api.PageService/LeaseLsn", frame([0x08, 0x01]));
    expect(refused.status).toBe("9");
  });

  const cases: [string, string, Buffer, Record<string, string | undefined>, string, string][] = [
    [
      "offered gzip responses",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "grpc-accept-encoding": "identity,deflate,gzip" },
      "3",
      "grpc-accept-encoding",
    ],
    [
      "a compressed request",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "grpc-encoding": "gzip" },
      "12",
      "grpc-encoding gzip",
    ],
    ["no te: trailers", "GetBaseBackup", frame(GOOD_BB), { te: undefined }, "13", "te"],
    [
      "a wrong content-type",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "content-type": "application/json" },
      "13",
      "content-type",
    ],
    [
      "no tenant",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "neon-tenant-id": undefined },
      "3",
      "missing neon-tenant-id",
    ],
    [
      "another tenant",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "neon-tenant-id": "ab".repeat(16) },
      "3",
      "unknown tenant",
    ],
    [
      "an upper-case timeline",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "neon-timeline-id": TIMELINE.toUpperCase() },
      "3",
      "invalid neon-timeline-id",
    ],
    [
      "a basebackup from shard 1",
      "GetBaseBackup",
      frame(GOOD_BB),
      { "neon-shard-id": "0102" },
      "3",
      "expected 0000",
    ],
    [
      "no authorization",
      "GetBaseBackup",
      frame(GOOD_BB),
      { authorization: undefined },
      "16",
      "no authorization header",
    ],
    [
      "a token without Bearer",
      "GetBaseBackup",
      frame(GOOD_BB),
      { authorization: "jwt" },
      "3",
      "invalid authorization header",
    ],
    ["full=true", "GetBaseBackup", frame([0x18, 0x01, 0x20, 0x02]), {}, "3", "full basebackup"],
    ["no compression", "GetBaseBackup", frame([0x08, 0x01]), {}, "3", "expected GZIP"],
    [
      "an unknown field",
      "GetBaseBackup",
      frame([0x20, 0x02, 0x28, 0x01]),
      {},
      "13",
      "unknown field 5",
    ],
    ["lsn as bytes", "GetBaseBackup", frame([0x0a, 0x01, 0x00]), {}, "13", "wire type 2"],
    [
      "two messages",
      "GetBaseBackup",
      Buffer.concat([frame(GOOD_BB), frame(GOOD_BB)]),
      {},
      "13",
      "for one message",
    ],
    ["a lease of LSN 0", "LeaseLsn", frame([]), {}, "3", "invalid lsn"],
    ["an unknown method", "GetPages", frame([]), {}, "12", "unknown method"],
  ];
  for (const [name, method, body, headers, status, message] of cases) {
    test(`refuses ${name}`, async () => {
      await start();
      const r = await call(`/page_api.PageService/${method}`, body, headers);
      expect(r.status).toBe(status);
      expect(r.message).toContain(message);
      expect(ps?.rejections).toHaveLength(1);
      expect(r.body.length).toBe(0);
    });
  }

  test("without a token an authorization header is refused", async () => {
    await start({ token: null });
    const r = await call("/page_api.PageService/GetBaseBackup", frame(GOOD_BB));
    expect(r.status).toBe("3");
    const ok = await call("/page_api.PageService/GetBaseBackup", frame(GOOD_BB), {
      authorization: undefined,
    });
    expect(ok.status).toBe("0");
  });

  test("a lease must carry the shard it is for", async () => {
    await start({ shardCount: 2, leaseShardId: "0102" });
    const wrong = await call("/page_api.PageService/LeaseLsn", frame([0x08, 0x05]), {
      "neon-shard-id": "0002",
    });
    expect(wrong.status).toBe("3");
    const right = await call("/page_api.PageService/LeaseLsn", frame([0x08, 0x05]), {
      "neon-shard-id": "0102",
    });
    expect(right.status).toBe("0");
  });

  test("faults: error after data, reset, and the first N calls only", async () => {
    await start({ faults: { chunkSize: 4096, errorAfterData: true, faultyCalls: 1 } });
    const bad = await call("/page_api.PageService/GetBaseBackup", frame(GOOD_BB));
    expect(bad.status).toBe("13");
    expect(Buffer.compare(chunks(bad.body), Buffer.from(GZ))).toBe(0);
    const good = await call("/page_api.PageService/GetBaseBackup", frame(GOOD_BB));
    expect(good.status).toBe("0");
    await ps?.stop();
    await start({ faults: { chunkSize: 512, resetAfterChunks: 2 } });
    const reset = await call("/page_api.PageService/GetBaseBackup", frame(GOOD_BB)).catch(
      (e: Error) => e,
    );
    // No status: the stream ends with RST_STREAM (an error, or a body cut short).
    expect(GZ.length).toBeGreaterThan(3 * 512);
    expect(reset instanceof Error || reset.status === undefined).toBe(true);
  });
});
