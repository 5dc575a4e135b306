// Quoting vectors written by hand from the reference's pg_helpers tests, and the
// option renderings of the fixture's role `postgres` and database DB2.
import { describe, expect, test } from "bun:test";
import {
  databaseOptions,
  escapeLiteral,
  pgQuote,
  pgQuoteDollar,
  roleOptions,
} from "../../../src/spec/quote.ts";

describe("pgQuote", () => {
  test("doubles quotes and always wraps", () => {
    expect(pgQuote("name")).toBe('"name"');
    expect(pgQuote("")).toBe('""');
    expect(pgQuote("Name")).toBe('"Name"');
    // The fixture's literal backslash-n stays two characters.
    expect(pgQuote('"name";\\n select 1;')).toBe('"""name"";\\n select 1;"');
    expect(pgQuote('a"b')).toBe('"a""b"');
  });
  test("is not idempotent", () => {
    expect(pgQuote(pgQuote("x"))).toBe('"""x"""');
  });
});

describe("pgQuoteDollar", () => {
  const vectors: [string, string, string][] = [
    ["name", "$x$name$x$", "xx"],
    ["name$", "$x$name$$x$", "xx"],
    ["name$x$", "$xx$name$x$$xx$", "xxx"],
    ["x", "$xx$x$xx$", "xxx"],
    ["xx", "$xxx$xx$xxx$", "xxxx"],
    ["$x", "$xx$$x$xx$", "xxx"],
    ["xx$", "$xxx$xx$$xxx$", "xxxx"],
    ["$xx$", "$xxx$$xx$$xxx$", "xxxx"],
    ["", "$x$$x$", "xx"],
    ["$$", "$x$$$$x$", "xx"],
  ];
  for (const [input, quoted, outerTag] of vectors) {
    test(JSON.stringify(input), () => {
      expect(pgQuoteDollar(input)).toEqual({ quoted, outerTag });
    });
  }

  test("a long run of x's is quoted in linear time (found by the spec fuzzer)", () => {
    // 200,000 x's: the former grow-and-search loop took minutes here.
    const long = "x".repeat(200_000);
    const started = performance.now();
    const { quoted, outerTag } = pgQuoteDollar(`a${long}b`);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(outerTag).toBe(`${long}xx`);
    expect(quoted).toBe(`$${long}x$a${long}b$${long}x$`);
  });
});

describe("escapeLiteral", () => {
  test("vectors", () => {
    expect(escapeLiteral("test")).toBe("'test'");
    expect(escapeLiteral("test'")).toBe("'test'''");
    expect(escapeLiteral("test\\'")).toBe("E'test\\\\'''");
    expect(escapeLiteral("test\\'\\'")).toBe("E'test\\\\''\\\\'''");
  });
});

describe("option renderings", () => {
  test("role with an md5 hash and no options", () => {
    expect(
      roleOptions({
        name: "postgres",
        encrypted_password: "6b1d16b78004bbd51fa06af9eda75972",
        options: null,
      }),
    ).toBe(" LOGIN PASSWORD 'md56b1d16b78004bbd51fa06af9eda75972'");
  });
  test("SCRAM verifiers pass through, null clears", () => {
    const scram = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
    expect(roleOptions({ name: "r", encrypted_password: scram, options: null })).toBe(
      ` LOGIN PASSWORD '${scram}'`,
    );
    expect(roleOptions({ name: "r", encrypted_password: null, options: [] })).toBe(
      " LOGIN PASSWORD NULL",
    );
  });
  test("role options: string values escaped, others raw, null bare", () => {
    expect(
      roleOptions({
        name: "r",
        encrypted_password: null,
        options: [
          { name: "CONNECTION LIMIT", value: "5", vartype: "integer" },
          { name: "VALID UNTIL", value: "it's", vartype: "string" },
          { name: "NOINHERIT", value: null, vartype: "bool" },
        ],
      }),
    ).toBe("CONNECTION LIMIT 5 VALID UNTIL 'it''s' NOINHERIT LOGIN PASSWORD NULL");
  });
  test("fixture DB2", () => {
    expect(
      databaseOptions({
        name: "DB2",
        owner: "alexk",
        options: [
          { name: "LC_COLLATE", value: "C", vartype: "string" },
          { name: "LC_CTYPE", value: "C", vartype: "string" },
          { name: "TEMPLATE", value: "template0", vartype: "enum" },
        ],
      }),
    ).toBe(`LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 OWNER "alexk"`);
    expect(databaseOptions({ name: "d", owner: 'a"b', options: null })).toBe(' OWNER "a""b"');
  });
});
