import { expect, test } from "bun:test";
import { formatChain, formatOneLine, withContext } from "../../src/errors.ts";

test("one-line and multi-line renderings of a cause chain", () => {
  const err = withContext(
    "failed to get basebackup@0/169AD58",
    withContext("connection refused", new Error("os error 111")),
  );
  expect(formatOneLine(err)).toBe(
    "failed to get basebackup@0/169AD58: connection refused: os error 111",
  );
  expect(formatChain(err)).toBe(
    "failed to get basebackup@0/169AD58\n\nCaused by:\n    0: connection refused\n    1: os error 111",
  );
  expect(formatChain(new Error("plain"))).toBe("plain");
  expect(formatOneLine("a string")).toBe("a string");
});
