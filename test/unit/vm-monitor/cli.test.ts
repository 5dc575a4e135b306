import { describe, expect, test } from "bun:test";
import { parseVmMonitorCli } from "../../../src/cli.ts";
import { UsageError } from "../../../src/errors.ts";
import { parseListenAddr } from "../../../src/vm-monitor/server.ts";

describe("compute_ctl vm-monitor flags", () => {
  test("nothing given: no cgroup, no file cache, the default address", () => {
    expect(parseVmMonitorCli([])).toEqual({
      kind: "run",
      params: { cgroup: null, pgconnstr: null, addr: "0.0.0.0:10301" },
    });
  });

  test("long, short, attached and = forms", () => {
    expect(
      parseVmMonitorCli(["--cgroup", "g", "-p", "user=u host=h", "--addr=127.0.0.1:1"]),
    ).toEqual({
      kind: "run",
      params: { cgroup: "g", pgconnstr: "user=u host=h", addr: "127.0.0.1:1" },
    });
    expect(parseVmMonitorCli(["-cg", "-a=[::1]:5"])).toEqual({
      kind: "run",
      params: { cgroup: "g", pgconnstr: null, addr: "[::1]:5" },
    });
  });

  test("help", () => {
    const r = parseVmMonitorCli(["--help"]);
    expect(r.kind).toBe("help");
    if (r.kind === "help") {
      expect(r.text).toContain("--pgconnstr <PGCONNSTR>");
      expect(r.text).toContain("[default: 0.0.0.0:10301]");
    }
  });

  test("strict: unknown flags, missing values, repeats, positionals", () => {
    const bad = (argv: string[], text: string) => {
      expect(() => parseVmMonitorCli(argv)).toThrow(UsageError);
      expect(() => parseVmMonitorCli(argv)).toThrow(text);
    };
    bad(["--pgdata", "x"], "unexpected argument '--pgdata' found");
    bad(["--cgroup"], "a value is required for '--cgroup <CGROUP>'");
    bad(["--cgroup", "--addr", "x"], "a value is required for '--cgroup <CGROUP>'");
    bad(["-a", "1:1", "--addr", "2:2"], "cannot be used multiple times");
    bad(["extra"], "unexpected argument 'extra' found");
    bad(["-x"], "unexpected argument '-x' found");
  });
});

describe("listen address", () => {
  test("IPv4 and bracketed IPv6 with a port", () => {
    expect(parseListenAddr("0.0.0.0:10301")).toEqual({ hostname: "0.0.0.0", port: 10301 });
    expect(parseListenAddr("[::]:0")).toEqual({ hostname: "::", port: 0 });
  });
  test("anything else is refused", () => {
    for (const bad of ["localhost:1", "10301", "1.2.3.4", "1.2.3.4:70000", "::1:5", ""]) {
      expect(() => parseListenAddr(bad)).toThrow("invalid socket address syntax");
    }
  });
});
