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

test("a cause the message already quotes is rendered once", () => {
  const inner = new SyntaxError("JSON Parse error: Unexpected EOF");
  const middle = new Error(`invalid JSON: ${inner.message}`, { cause: inner });
  const outer = withContext("invalid --config file /c.json", middle);
  expect(formatOneLine(outer)).toBe(
    "invalid --config file /c.json: invalid JSON: JSON Parse error: Unexpected EOF",
  );
  expect(formatChain(outer)).toBe(
    "invalid --config file /c.json\n\nCaused by:\n    0: invalid JSON: JSON Parse error: Unexpected EOF",
  );
  // A library error whose cause repeats it (Bun's server and fetch errors do).
  const bun = new Error("Failed to start server. Is port 80 in use?", {
    cause: new Error("Failed to start server. Is port 80 in use?"),
  });
  expect(formatOneLine(withContext("failed to bind", bun))).toBe(
    "failed to bind: Failed to start server. Is port 80 in use?",
  );
  // A different cause further down is still shown.
  const deep = new Error("a: b", { cause: new Error("b", { cause: new Error("c") }) });
  expect(formatOneLine(deep)).toBe("a: b: c");
});
