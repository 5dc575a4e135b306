import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

// The layer of each top-level name under src/ (file names without `.ts`), lowest first. A file
// imports its own layer or lower ones only, `import type` included. A new top-level folder gets
// its layer here and in docs/architecture.md before anything imports it.
const LAYER: Record<string, number> = {
  ...Object.fromEntries(
    ["api", "util", "config", "errors", "log", "version", "testing-knobs", "failpoints"]
      .concat(["metrics", "tracing", "observability"])
      .map((n) => [n, 0]),
  ),
  ...Object.fromEntries(["postgres", "storage", "spec", "extensions"].map((n) => [n, 1])),
  ...Object.fromEntries(["lfc", "monitor", "vm-monitor", "sidecars"].map((n) => [n, 2])),
  compute: 3,
  http: 4,
  cli: 5,
  command: 5,
  run: 5,
  main: 5,
};

const SRC = resolve(import.meta.dir, "../../src");
const topName = (file: string) => relative(SRC, file).split("/")[0]!.replace(/\.ts$/, "");
const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) =>
  f.endsWith(".ts"),
);

test("every top-level name under src/ has a layer", () => {
  const unknown = [...new Set(files.map((f) => topName(join(SRC, f))))].filter(
    (n) => !(n in LAYER),
  );
  expect(unknown).toEqual([]);
});

test("every file under src/ imports its own layer or lower ones only", () => {
  const forbidden = new Set<string>();
  for (const file of files) {
    const path = join(SRC, file);
    const text = readFileSync(path, "utf8");
    // Static imports, re-exports and dynamic import() of relative paths.
    for (const m of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.[^"']+)["']/g)) {
      const target = resolve(dirname(path), m[1]!);
      if (LAYER[topName(target)]! > LAYER[topName(path)]!) {
        forbidden.add(`${file} -> ${relative(SRC, target)}`);
      }
    }
  }
  expect([...forbidden].sort()).toEqual([]);
});

test("the environment is read in testing-knobs.ts only (and version.ts's build constants)", () => {
  const readers = files.filter(
    (f) =>
      f !== "testing-knobs.ts" &&
      f !== "version.ts" &&
      /\bprocess\.env\b|\bBun\.env\b/.test(readFileSync(join(SRC, f), "utf8")),
  );
  expect(readers).toEqual([]);
});
