// A fake OpenTelemetry collector: OTLP/HTTP with protobuf bodies, traces only. It decodes every
// ExportTraceServiceRequest it receives (opentelemetry/proto/collector/trace/v1) with its own
// protobuf reader and keeps the spans. It is strict: another path or method, a content type other
// than application/x-protobuf, a body that is not a well-formed request (a wrong wire type for a
// known field, a trace id that is not 16 bytes, a span id that is not 8) is answered 4xx and
// recorded in `rejected`. `failWith` makes it answer every export with that status (a collector
// in trouble); 200 carries an empty ExportTraceServiceResponse, as a real collector sends.

export type AnyValue = string | boolean | number | bigint | Uint8Array | AnyValue[] | KeyValues;
export type KeyValues = { [key: string]: AnyValue };

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  traceState: string;
  name: string;
  /** 1 internal, 2 server, 3 client, … (SpanKind). */
  kind: number;
  startNanos: bigint;
  endNanos: bigint;
  attributes: KeyValues;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  /** The resource's attributes (service.name, …) and the instrumentation scope's name. */
  resource: KeyValues;
  scope: string;
}

export interface FakeCollector {
  url: string;
  spans: DecodedSpan[];
  /** Export requests accepted. */
  exports: number;
  /** Every request that arrived, accepted, failed on purpose or rejected. */
  requests: number;
  rejected: string[];
  /** Every export gets this status from now on (undefined: 200). */
  failWith: number | undefined;
  /** Resolves once a span named `name` has arrived. */
  waitForSpan(name: string, timeoutMs?: number): Promise<DecodedSpan>;
  stop(): Promise<void>;
}

class ProtoError extends Error {}

/** A protobuf reader over one message's bytes. */
class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new ProtoError("truncated varint");
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new ProtoError("varint longer than 10 bytes");
    }
  }

  take(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new ProtoError("truncated field");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** The next field's number and wire type. */
  tag(): { field: number; wire: number } {
    const t = Number(this.varint());
    const field = t >>> 3;
    if (field === 0) throw new ProtoError("field number 0");
    return { field, wire: t & 7 };
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.take(8);
    else if (wire === 2) this.take(Number(this.varint()));
    else if (wire === 5) this.take(4);
    else throw new ProtoError(`unsupported wire type ${wire}`);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Reads every field of a message, handing each to `on`; `on` returns false for unknown fields. */
function fields(buf: Uint8Array, on: (field: number, wire: number, r: Reader) => boolean): void {
  const r = new Reader(buf);
  while (!r.done) {
    const { field, wire } = r.tag();
    if (!on(field, wire, r)) r.skip(wire);
  }
}

function expectWire(field: number, wire: number, want: number, what: string): void {
  if (wire !== want) throw new ProtoError(`${what} (field ${field}) has wire type ${wire}`);
}

function bytesOf(r: Reader): Uint8Array {
  return r.take(Number(r.varint()));
}

function stringOf(r: Reader): string {
  return utf8.decode(bytesOf(r));
}

function fixed64(r: Reader): bigint {
  return new DataView(r.take(8).slice().buffer).getBigUint64(0, true);
}

function anyValue(buf: Uint8Array): AnyValue {
  let v: AnyValue = "";
  fields(buf, (f, w, r) => {
    switch (f) {
      case 1:
        expectWire(f, w, 2, "AnyValue.string_value");
        v = stringOf(r);
        return true;
      case 2:
        expectWire(f, w, 0, "AnyValue.bool_value");
        v = r.varint() !== 0n;
        return true;
      case 3: {
        expectWire(f, w, 0, "AnyValue.int_value");
        const n = BigInt.asIntN(64, r.varint());
        v = Number.isSafeInteger(Number(n)) ? Number(n) : n;
        return true;
      }
      case 4:
        expectWire(f, w, 1, "AnyValue.double_value");
        v = new DataView(r.take(8).slice().buffer).getFloat64(0, true);
        return true;
      case 5: {
        expectWire(f, w, 2, "AnyValue.array_value");
        const values: AnyValue[] = [];
        fields(bytesOf(r), (f2, w2, r2) => {
          if (f2 !== 1) return false;
          expectWire(f2, w2, 2, "ArrayValue.values");
          values.push(anyValue(bytesOf(r2)));
          return true;
        });
        v = values;
        return true;
      }
      case 6:
        expectWire(f, w, 2, "AnyValue.kvlist_value");
        v = keyValues(bytesOf(r), 1);
        return true;
      case 7:
        expectWire(f, w, 2, "AnyValue.bytes_value");
        v = bytesOf(r).slice();
        return true;
      default:
        return false;
    }
  });
  return v;
}

/** A KeyValue message into `into`. */
function keyValue(buf: Uint8Array, into: KeyValues): void {
  let key: string | undefined;
  let value: AnyValue = "";
  fields(buf, (f, w, r) => {
    if (f === 1) {
      expectWire(f, w, 2, "KeyValue.key");
      key = stringOf(r);
      return true;
    }
    if (f === 2) {
      expectWire(f, w, 2, "KeyValue.value");
      value = anyValue(bytesOf(r));
      return true;
    }
    return false;
  });
  if (key === undefined) throw new ProtoError("KeyValue without a key");
  into[key] = value;
}

/** The repeated KeyValue field `field` of a message. */
function keyValues(buf: Uint8Array, field: number): KeyValues {
  const out: KeyValues = {};
  fields(buf, (f, w, r) => {
    if (f !== field) return false;
    expectWire(f, w, 2, "KeyValue");
    keyValue(bytesOf(r), out);
    return true;
  });
  return out;
}

function span(buf: Uint8Array, resource: KeyValues, scope: string): DecodedSpan {
  const s: DecodedSpan = {
    traceId: "",
    spanId: "",
    parentSpanId: "",
    traceState: "",
    name: "",
    kind: 0,
    startNanos: 0n,
    endNanos: 0n,
    attributes: {},
    statusCode: 0,
    statusMessage: "",
    resource,
    scope,
  };
  fields(buf, (f, w, r) => {
    switch (f) {
      case 1:
      case 2:
      case 4: {
        expectWire(f, w, 2, "Span id");
        const id = bytesOf(r);
        const want = f === 1 ? 16 : 8;
        if (!(f === 4 && id.length === 0) && id.length !== want) {
          throw new ProtoError(`span id field ${f} has ${id.length} bytes, not ${want}`);
        }
        if (f === 1) s.traceId = hex(id);
        else if (f === 2) s.spanId = hex(id);
        else s.parentSpanId = hex(id);
        return true;
      }
      case 3:
        expectWire(f, w, 2, "Span.trace_state");
        s.traceState = stringOf(r);
        return true;
      case 5:
        expectWire(f, w, 2, "Span.name");
        s.name = stringOf(r);
        return true;
      case 6:
        expectWire(f, w, 0, "Span.kind");
        s.kind = Number(r.varint());
        return true;
      case 7:
      case 8:
        expectWire(f, w, 1, "Span time");
        if (f === 7) s.startNanos = fixed64(r);
        else s.endNanos = fixed64(r);
        return true;
      case 9:
        expectWire(f, w, 2, "Span.attributes");
        keyValue(bytesOf(r), s.attributes);
        return true;
      case 15:
        expectWire(f, w, 2, "Span.status");
        fields(bytesOf(r), (f2, w2, r2) => {
          if (f2 === 2) {
            expectWire(f2, w2, 2, "Status.message");
            s.statusMessage = stringOf(r2);
            return true;
          }
          if (f2 === 3) {
            expectWire(f2, w2, 0, "Status.code");
            s.statusCode = Number(r2.varint());
            return true;
          }
          return false;
        });
        return true;
      case 16:
        expectWire(f, w, 5, "Span.flags");
        r.take(4);
        return true;
      default:
        return false;
    }
  });
  if (!s.traceId || !s.spanId) throw new ProtoError("span without trace_id or span_id");
  if (s.endNanos < s.startNanos) throw new ProtoError(`span ${s.name} ends before it starts`);
  return s;
}

/** Decodes an ExportTraceServiceRequest into its spans. */
export function decodeExportTraceServiceRequest(buf: Uint8Array): DecodedSpan[] {
  const out: DecodedSpan[] = [];
  fields(buf, (f, w, r) => {
    if (f !== 1) return false;
    expectWire(f, w, 2, "resource_spans");
    const rs = bytesOf(r);
    let resource: KeyValues = {};
    const scopeSpans: Uint8Array[] = [];
    fields(rs, (f2, w2, r2) => {
      if (f2 === 1) {
        expectWire(f2, w2, 2, "ResourceSpans.resource");
        resource = keyValues(bytesOf(r2), 1);
        return true;
      }
      if (f2 === 2) {
        expectWire(f2, w2, 2, "ResourceSpans.scope_spans");
        scopeSpans.push(bytesOf(r2));
        return true;
      }
      return false;
    });
    for (const ss of scopeSpans) {
      let scope = "";
      const spans: Uint8Array[] = [];
      fields(ss, (f3, w3, r3) => {
        if (f3 === 1) {
          expectWire(f3, w3, 2, "ScopeSpans.scope");
          fields(bytesOf(r3), (f4, w4, r4) => {
            if (f4 !== 1) return false;
            expectWire(f4, w4, 2, "InstrumentationScope.name");
            scope = stringOf(r4);
            return true;
          });
          return true;
        }
        if (f3 === 2) {
          expectWire(f3, w3, 2, "ScopeSpans.spans");
          spans.push(bytesOf(r3));
          return true;
        }
        return false;
      });
      for (const sp of spans) out.push(span(sp, resource, scope));
    }
    return true;
  });
  return out;
}

export async function startFakeCollector(opts: { failWith?: number } = {}): Promise<FakeCollector> {
  const waiters: { name: string; resolve: (s: DecodedSpan) => void }[] = [];
  const collector: FakeCollector = {
    url: "",
    spans: [],
    exports: 0,
    requests: 0,
    rejected: [],
    failWith: opts.failWith,
    waitForSpan(name, timeoutMs = 20_000) {
      const found = collector.spans.find((s) => s.name === name);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { name, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i === -1) return;
          waiters.splice(i, 1);
          reject(new Error(`no span ${name} within ${timeoutMs} ms`));
        }, timeoutMs);
      });
    },
    stop: async () => {
      await server.stop(true);
    },
  };
  const reject = (status: number, why: string) => {
    collector.rejected.push(why);
    return new Response(why, { status });
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      collector.requests++;
      const path = new URL(request.url).pathname;
      if (path !== "/v1/traces") return reject(404, `unknown path ${path}`);
      if (request.method !== "POST") return reject(405, `method ${request.method}`);
      const type = request.headers.get("content-type");
      if (type !== "application/x-protobuf") return reject(415, `content type ${type}`);
      let body = new Uint8Array(await request.arrayBuffer());
      const encoding = request.headers.get("content-encoding");
      if (encoding === "gzip") body = Bun.gunzipSync(body);
      else if (encoding !== null) return reject(415, `content encoding ${encoding}`);
      let spans: DecodedSpan[];
      try {
        spans = decodeExportTraceServiceRequest(body);
      } catch (err) {
        return reject(400, `undecodable export: ${(err as Error).message}`);
      }
      if (collector.failWith !== undefined) {
        return new Response(null, { status: collector.failWith });
      }
      collector.exports++;
      collector.spans.push(...spans);
      for (const s of spans) {
        for (const w of waiters.filter((x) => x.name === s.name)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(s);
        }
      }
      return new Response(new Uint8Array(0), {
        headers: { "content-type": "application/x-protobuf" },
      });
    },
  });
  collector.url = `http://127.0.0.1:${server.port}`;
  return collector;
}
