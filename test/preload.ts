// Loaded before every test file (bunfig.toml): in-process code logs only warnings and errors
// unless TEST_LOG is set, so test output stays readable. Spawned binaries log as configured.
// Hooks here run once for the whole run: at its end, what the test support made for this run
// (the binary copy) is removed.
import { afterAll } from "bun:test";
import { configureLogging, parseLevelFilter } from "../src/log.ts";
import { cleanup, runExitHooks } from "./support/proc.ts";

configureLogging({ level: process.env.TEST_LOG ? parseLevelFilter(process.env.TEST_LOG) : "warn" });

afterAll(async () => {
  await cleanup();
  runExitHooks();
});
