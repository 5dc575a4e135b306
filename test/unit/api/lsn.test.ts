import { describe, expect, test } from "bun:test";
import {
  formatLsn,
  LSN_PATTERN,
  normalizeLsn,
  parseLsn,
  tryParseLsn,
} from "../../../src/api/lsn.ts";

describe("lsn", () => {
  test("parses the two u32 hex halves into one u64", () => {
    expect(parseLsn("0/169AD58")).toBe(0x169ad58n);
    expect(parseLsn("1/0")).toBe(1n << 32n);
    expect(parseLsn("FFFFFFFF/FFFFFFFF")).toBe((1n << 64n) - 1n);
    expect(parseLsn("abc/def")).toBe((0xabcn << 32n) | 0xdefn);
  });

  test("trims whitespace and accepts leading zeros and a '+' sign like from_str_radix", () => {
    expect(parseLsn("  0/169AD58\n")).toBe(0x169ad58n);
    expect(parseLsn("\u30000/1\u0085")).toBe(1n);
    expect(parseLsn("000000001/0000000002")).toBe((1n << 32n) | 2n);
    expect(parseLsn("+1/+2")).toBe((1n << 32n) | 2n);
  });

  test("rejects anything else", () => {
    for (const bad of [
      "",
      "0",
      "169AD58",
      "0/",
      "/0",
      "1/2/3",
      "x/1",
      "100000000/0",
      "-1/0",
      "0 /1",
      "\ufeff0/1",
    ]) {
      expect(tryParseLsn(bad)).toBeNull();
      expect(() => parseLsn(bad)).toThrow(`invalid LSN ${JSON.stringify(bad)}`);
    }
  });

  test("formats upper-case hex halves without padding", () => {
    expect(formatLsn(0x169ad58n)).toBe("0/169AD58");
    expect(formatLsn((0x1an << 32n) | 0xbn)).toBe("1A/B");
    expect(formatLsn(0n)).toBe("0/0");
    expect(() => formatLsn(-1n)).toThrow(RangeError);
    expect(() => formatLsn(1n << 64n)).toThrow(RangeError);
  });

  test("normalises to the canonical spelling", () => {
    expect(normalizeLsn(" 0/0169ad58 ")).toBe("0/169AD58");
  });

  test("the schema pattern accepts exactly what the parser accepts", () => {
    const re = new RegExp(LSN_PATTERN);
    for (const s of ["0/169AD58", " 1/2 ", "+1/0", "1/2/3", "", "100000000/0", "0/x"]) {
      expect(re.test(s)).toBe(tryParseLsn(s) !== null);
    }
  });
});
