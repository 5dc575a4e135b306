// Loaded before every test file (bunfig.toml): in-process code logs only warnings and errors
// unless TEST_LOG is set, so test output stays readable. Spawned binaries log as configured.
import { configureLogging, parseLevelFilter } from "../src/log.ts";

configureLogging({ level: process.env.TEST_LOG ? parseLevelFilter(process.env.TEST_LOG) : "warn" });
