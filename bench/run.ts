#!/usr/bin/env bun
// Runs the benchmarks: `bun bench/run.ts [name ...]` (default: all of bench/*.ts but this file).
// Each prints a table that compares compute_ctl with a floor measured in the same run.
import { readdirSync } from "node:fs";
import { join } from "node:path";

const names = process.argv.slice(2);
const all = readdirSync(import.meta.dir)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.startsWith("_"))
  .map((f) => f.slice(0, -3));
// Run only when named: the soak takes SOAK_MINUTES (30 by default).
const ONLY_WHEN_NAMED = ["soak"];
for (const name of names.length ? names : all.filter((n) => !ONLY_WHEN_NAMED.includes(n))) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; have: ${all.join(", ")}`);
    process.exit(2);
  }
  console.log(`\n== bench/${name}`);
  const p = Bun.spawn(["bun", join(import.meta.dir, `${name}.ts`)], {
    stdout: "inherit",
    stderr: "inherit",
  });
  if ((await p.exited) !== 0) process.exit(1);
}
