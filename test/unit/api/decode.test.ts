import { describe, expect, test } from "bun:test";
import { Type as T } from "@sinclair/typebox";
import {
  decode,
  formatPath,
  JsonSyntaxError,
  parseJson,
  SchemaError,
} from "../../../src/api/decode.ts";
import { ComputeSpec } from "../../../src/api/spec.ts";
import { minimalSpec, schemaError } from "./helpers.ts";

describe("parseJson", () => {
  test("bad syntax is a JsonSyntaxError, not a SchemaError", () => {
    for (const text of ["", "{", '{"format_version": }', "nul", "{'a': 1}"]) {
      let err: unknown;
      try {
        parseJson(ComputeSpec, text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(JsonSyntaxError);
      expect(err).not.toBeInstanceOf(SchemaError);
      expect((err as Error).message).toStartWith("invalid JSON: ");
    }
  });

  test("good syntax with a bad shape is a SchemaError with a path", () => {
    let err: unknown;
    try {
      parseJson(
        ComputeSpec,
        JSON.stringify({ ...minimalSpec(), cluster: { roles: [{ name: 1 }] } }),
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).path).toBe("cluster.roles[0].name");
    expect((err as SchemaError).problem).toBe("expected a string, got 1");
    expect((err as SchemaError).message).toBe("cluster.roles[0].name: expected a string, got 1");
    expect((err as SchemaError).message).not.toContain("\n");
  });

  test("a document that is not an object", () => {
    expect(() => parseJson(ComputeSpec, "[1]")).toThrow("$: expected an object, got an array");
    expect(() => parseJson(ComputeSpec, "null")).toThrow("$: expected an object, got null");
  });
});

describe("decode", () => {
  test("paths: dotted names, [i] for items, quoted odd keys", () => {
    expect(formatPath([])).toBe("$");
    expect(formatPath(["spec", "cluster", "roles", 0, "name"])).toBe("spec.cluster.roles[0].name");
    expect(formatPath(["shards", "0000", "x"])).toBe('shards["0000"].x');
    expect(formatPath(["a b", "c.d"])).toBe('["a b"]["c.d"]');
  });

  test("long string values are shortened in messages", () => {
    const err = (() => {
      try {
        decode(ComputeSpec, { ...minimalSpec(), suspend_timeout_seconds: "x".repeat(500) });
      } catch (e) {
        return e as SchemaError;
      }
    })();
    expect(err?.message.length).toBeLessThan(120);
  });

  test("does not modify its input", () => {
    const doc = {
      ...minimalSpec(),
      features: ["foo"],
      tenant_id: minimalSpec().tenant_id.toUpperCase(),
    };
    const before = JSON.stringify(doc);
    decode(ComputeSpec, doc);
    expect(JSON.stringify(doc)).toBe(before);
  });

  test("a __proto__ key in a map stays data", () => {
    const doc = JSON.parse(
      JSON.stringify({ ...minimalSpec(), pgbouncer_settings: {} }).replace(
        '"pgbouncer_settings":{}',
        '"pgbouncer_settings":{"__proto__":"x"}',
      ),
    );
    const s = decode(ComputeSpec, doc);
    expect(Object.getPrototypeOf(s.pgbouncer_settings)).toBe(Object.prototype);
    expect(Object.keys(s.pgbouncer_settings ?? {})).toEqual(["__proto__"]);
  });

  test("keywords the walk does not know are still enforced by the compiled checker", () => {
    const S = T.Object({ s: T.String({ minLength: 3 }) });
    let err: unknown;
    try {
      decode(S, { s: "ab" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).path).toBe("s");
    expect((err as SchemaError).message).not.toContain("\n");
  });

  test("works for any TypeBox schema made of the supported kinds", () => {
    const S = T.Object({ n: T.Integer({ minimum: 0, maximum: 10 }), tags: T.Array(T.String()) });
    expect(decode(S, { n: 3, tags: ["a"], extra: true })).toEqual({ n: 3, tags: ["a"] });
    expect(() => decode(S, { n: 11, tags: [] })).toThrow(
      "n: expected an integer between 0 and 10, got 11",
    );
  });
});

describe("parseJson: what serde_json refuses", () => {
  const Doc = T.Object({ a: T.Integer(), m: T.Record(T.String(), T.Integer()) });
  const syntax = (text: string) => {
    try {
      parseJson(Doc, text);
    } catch (err) {
      if (err instanceof JsonSyntaxError) return err.message;
      throw err;
    }
    throw new Error("accepted");
  };

  test("a UTF-8 byte order mark is a syntax error", () => {
    expect(syntax('\ufeff{"a":1,"m":{}}')).toBe("invalid JSON: expected value at line 1 column 1");
  });

  test("128 nested levels are a syntax error, 127 are not", () => {
    const nest = (n: number) => `{"a":1,"m":{},"x":${"[".repeat(n - 1)}${"]".repeat(n - 1)}}`;
    expect(parseJson(Doc, nest(127)).a).toBe(1);
    expect(syntax(nest(128))).toBe("invalid JSON: recursion limit exceeded at line 1 column 146");
    // Far deeper than JSON.parse's own stack would allow is refused just the same.
    expect(syntax("[".repeat(1_000_000))).toContain("recursion limit exceeded");
  });

  test("lone surrogate escapes are syntax errors; pairs are fine", () => {
    expect(syntax('{"a":1,"m":{"\\ud800":1}}')).toContain("lone leading surrogate in hex escape");
    expect(syntax('{"a":1,"m":{},"s":"x\\udc00"}')).toContain("lone leading surrogate");
    expect(syntax('{"a":1,"m":{},"s":"\\ud800\\u0041"}')).toContain("lone leading surrogate");
    expect(parseJson(Doc, '{"a":1,"m":{"\\ud83d\\ude00":2}}').m).toEqual({ "😀": 2 });
  });

  test("a repeated struct field is refused; in a map the last value wins (as serde)", () => {
    expect(schemaError(() => parseJson(Doc, '{"a":1,"a":2,"m":{}}')).message).toBe(
      "$: duplicate field `a`",
    );
    expect(parseJson(Doc, '{"a":1,"m":{"k":1,"k":2}}').m).toEqual({ k: 2 });
    // An unknown field is ignored, repeated or not.
    expect(parseJson(Doc, '{"a":1,"m":{},"z":1,"z":2}').a).toBe(1);
    // An escaped spelling of the same key is the same key.
    expect(schemaError(() => parseJson(Doc, '{"a":1,"\\u0061":2,"m":{}}')).message).toBe(
      "$: duplicate field `a`",
    );
  });
});
