import { describe, expect, test } from "bun:test";
import type { BooleanArgDef, EnumArgDef, StringArgDef } from "citty";
import { command, helpText, parseCli, SUBCOMMANDS } from "../../src/cli.ts";
import type { Params } from "../../src/config/params.ts";
import { ConfigError, UsageError } from "../../src/errors.ts";
import { BUILD_TAG, BUILD_TARGET, VERSION } from "../../src/version.ts";

type ArgDef = BooleanArgDef | StringArgDef | EnumArgDef;

const CONNSTR = "postgresql://cloud_admin@localhost:55432/postgres";
/** The minimum a run needs: the three required flags and one config source. */
const BASE = ["--pgdata", "/tmp/pgdata", "--connstr", CONNSTR, "--compute-id", "compute-1"];
const WITH_CONFIG = [...BASE, "--config", "/tmp/config.json"];

function run(argv: string[], env: Record<string, string | undefined> = {}): Params {
  const r = parseCli(argv, env);
  if (r.kind !== "run") throw new Error(`expected a run, got ${r.kind}`);
  return r.params;
}

/** Asserts a UsageError whose single-line message contains every fragment. */
function usageError(argv: string[], ...fragments: string[]): string {
  return cliError(UsageError, argv, ...fragments);
}

function configError(argv: string[], ...fragments: string[]): string {
  return cliError(ConfigError, argv, ...fragments);
}

function cliError(
  kind: typeof UsageError | typeof ConfigError,
  argv: string[],
  ...fragments: string[]
): string {
  let caught: unknown;
  try {
    parseCli(argv, {});
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(kind);
  expect(caught).not.toBeInstanceOf(kind === UsageError ? ConfigError : UsageError);
  const message = (caught as Error).message;
  expect(message).not.toContain("\n");
  for (const f of fragments) expect(message).toContain(f);
  return message;
}

describe("defaults (the reference's values)", () => {
  const p = run(WITH_CONFIG);

  test("flags with defaults", () => {
    expect(p.pgbin).toBe("postgres");
    expect(p.remoteExtBaseUrl).toBeNull();
    expect(p.externalHttpPort).toBe(3080);
    expect(p.internalHttpPort).toBe(3081);
    expect(p.httpPort).toBeNull();
    expect(p.privilegedRoleName).toBe("neon_superuser");
    expect(p.cgroup).toBe("neon-postgres");
    expect(p.filecacheConnstr).toBe(
      "host=localhost port=5432 dbname=postgres user=cloud_admin sslmode=disable application_name=vm-monitor",
    );
    expect(p.vmMonitorAddr).toBe("0.0.0.0:10301");
    expect(p.resizeSwapOnBind).toBe(false);
    expect(p.setDiskQuotaForFs).toBeNull();
    expect(p.controlPlaneUri).toBeNull();
    expect(p.specPath).toBeNull();
    expect(p.installedExtensionsCollectionInterval).toBe(3600);
    expect(p.dev).toBe(false);
    expect(p.pgInitTimeout).toBeNull();
    expect(p.lakebaseMode).toBe(false);
    expect(p.logLevel).toBe("info");
    expect(p.logFormat).toBe("text");
  });

  test("required flags are carried through", () => {
    expect(p.pgdata).toBe("/tmp/pgdata");
    expect(p.connstr).toBeInstanceOf(URL);
    expect(p.connstr.port).toBe("55432");
    expect(p.connstr.username).toBe("cloud_admin");
    expect(p.computeId).toBe("compute-1");
    expect(p.configPath).toBe("/tmp/config.json");
  });

  test("every reference flag is defined with its long name and short form", () => {
    const expected: Record<string, string | undefined> = {
      pgbin: "b",
      "remote-ext-base-url": "r",
      "external-http-port": undefined,
      "internal-http-port": undefined,
      "http-port": undefined,
      pgdata: "D",
      connstr: "C",
      "privileged-role-name": undefined,
      cgroup: undefined,
      "filecache-connstr": undefined,
      "vm-monitor-addr": undefined,
      "resize-swap-on-bind": undefined,
      "set-disk-quota-for-fs": undefined,
      config: "c",
      "compute-id": "i",
      "control-plane-uri": "p",
      "installed-extensions-collection-interval": undefined,
      dev: undefined,
      "pg-init-timeout": undefined,
      "lakebase-mode": undefined,
      "spec-path": "S",
      "log-level": undefined,
      "log-format": undefined,
      help: "h",
      version: undefined,
    };
    const defs = command.args as Record<string, ArgDef>;
    expect(Object.keys(defs).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, short] of Object.entries(expected)) {
      expect(defs[name]?.alias).toBe(short);
    }
    expect(defs.pgdata?.required).toBe(true);
    expect(defs.connstr?.required).toBe(true);
    expect(defs["compute-id"]?.required).toBe(true);
  });
});

describe("values", () => {
  test("every flag is carried into Params", () => {
    const p = run([
      "-b",
      "/opt/pg/bin/postgres",
      "-r",
      "http://ext.example",
      "--external-http-port",
      "4080",
      "--internal-http-port=4081",
      "-D",
      "/data",
      "-C",
      "postgres://u@h:6432/db",
      "--privileged-role-name",
      "my_superuser",
      "--cgroup",
      "cg",
      "--filecache-connstr",
      "host=x",
      "--vm-monitor-addr",
      "127.0.0.1:1",
      "--resize-swap-on-bind",
      "--set-disk-quota-for-fs",
      "/mnt",
      "-p",
      "http://cplane:9090",
      "-i",
      "cid",
      "--installed-extensions-collection-interval",
      "60",
      "--dev",
      "--pg-init-timeout",
      "30",
      "--log-level",
      "debug",
      "--log-format",
      "json",
    ]);
    expect(p).toMatchObject({
      pgbin: "/opt/pg/bin/postgres",
      remoteExtBaseUrl: "http://ext.example/",
      externalHttpPort: 4080,
      internalHttpPort: 4081,
      pgdata: "/data",
      privilegedRoleName: "my_superuser",
      cgroup: "cg",
      filecacheConnstr: "host=x",
      vmMonitorAddr: "127.0.0.1:1",
      resizeSwapOnBind: true,
      setDiskQuotaForFs: "/mnt",
      controlPlaneUri: "http://cplane:9090",
      configPath: null,
      computeId: "cid",
      installedExtensionsCollectionInterval: 60,
      dev: true,
      pgInitTimeout: 30,
      logLevel: "debug",
      logFormat: "json",
    });
    expect(p.connstr.hostname).toBe("h");
  });

  test("value forms clap accepts: --flag=value, -Dvalue, -D=value", () => {
    const p = run(["--pgdata=/a", "-Cpostgres://x@y/z", "-i=cid", "-c", "/cfg"]);
    expect(p.pgdata).toBe("/a");
    expect(p.connstr.hostname).toBe("y");
    expect(p.computeId).toBe("cid");
  });

  test("a value may be empty or a lone '-', but not another flag", () => {
    expect(run([...WITH_CONFIG, "--cgroup", ""]).cgroup).toBe("");
    expect(run([...WITH_CONFIG, "--cgroup", "-"]).cgroup).toBe("-");
    expect(run([...WITH_CONFIG, "--cgroup=-x"]).cgroup).toBe("-x");
  });

  test("port 0 and 65535 are in range", () => {
    expect(run([...WITH_CONFIG, "--external-http-port", "0"]).externalHttpPort).toBe(0);
    expect(run([...WITH_CONFIG, "--internal-http-port", "65535"]).internalHttpPort).toBe(65535);
  });

  test("a trailing `--` is accepted", () => {
    expect(run([...WITH_CONFIG, "--"]).pgdata).toBe("/tmp/pgdata");
  });
});

describe("environment", () => {
  test("POSTGRES_PATH sets --pgbin; the flag wins over it", () => {
    expect(run(WITH_CONFIG, { POSTGRES_PATH: "/env/bin/postgres" }).pgbin).toBe(
      "/env/bin/postgres",
    );
    expect(
      run([...WITH_CONFIG, "-b", "/flag/bin/postgres"], { POSTGRES_PATH: "/env/bin/postgres" })
        .pgbin,
    ).toBe("/flag/bin/postgres");
  });

  test("RUST_LOG sets the default log level; --log-level wins over it", () => {
    expect(run(WITH_CONFIG, { RUST_LOG: "warn" }).logLevel).toBe("warn");
    expect(run(WITH_CONFIG, { RUST_LOG: "error,compute_ctl=trace" }).logLevel).toBe("trace");
    expect(run([...WITH_CONFIG, "--log-level", "error"], { RUST_LOG: "debug" }).logLevel).toBe(
      "error",
    );
  });
});

describe("usage errors", () => {
  test("unknown flags and stray arguments", () => {
    usageError([...WITH_CONFIG, "--bogus"], "unexpected argument '--bogus'");
    usageError([...WITH_CONFIG, "--bogus=1"], "'--bogus'");
    usageError([...WITH_CONFIG, "-x"], "unexpected argument '-x'");
    usageError([...WITH_CONFIG, "stray"], "unexpected argument 'stray'");
    usageError([...WITH_CONFIG, "--", "stray"], "unexpected argument 'stray'");
    // clap does not expand abbreviations.
    usageError([...WITH_CONFIG, "--pgdat", "/x"], "'--pgdat'");
  });

  test("an unknown flag close to a real one gets a suggestion; a far one does not", () => {
    const msg = (argv: string[]) => usageError(argv);
    expect(msg([...WITH_CONFIG, "--pg-data", "/x"])).toBe(
      "unexpected argument '--pg-data' found (did you mean '--pgdata'?)",
    );
    expect(msg([...WITH_CONFIG, "--conifg=/x"])).toBe(
      "unexpected argument '--conifg' found (did you mean '--config'?)",
    );
    expect(msg([...WITH_CONFIG, "--external_http_port", "1"])).toBe(
      "unexpected argument '--external_http_port' found (did you mean '--external-http-port'?)",
    );
    expect(msg([...WITH_CONFIG, "--bogus"])).toBe("unexpected argument '--bogus' found");
    expect(msg([...WITH_CONFIG, "--port", "1"])).toBe("unexpected argument '--port' found");
  });

  test("a missing value: last argument, or followed by another flag", () => {
    usageError([...WITH_CONFIG, "--cgroup"], "value is required", "--cgroup");
    usageError(["--pgdata", "--connstr", CONNSTR], "value is required", "--pgdata");
    usageError(["-D", "-C", CONNSTR], "value is required", "--pgdata");
    usageError(["--pgdata", "--"], "value is required", "--pgdata");
  });

  test("non-numeric and out-of-range numbers", () => {
    usageError([...WITH_CONFIG, "--external-http-port", "abc"], "--external-http-port", "'abc'");
    usageError([...WITH_CONFIG, "--internal-http-port", "65536"], "--internal-http-port", "65536");
    usageError([...WITH_CONFIG, "--http-port", "99999"], "--http-port", "99999");
    usageError([...WITH_CONFIG, "--external-http-port=-1"], "--external-http-port", "-1");
    usageError([...WITH_CONFIG, "--external-http-port="], "--external-http-port");
    usageError([...WITH_CONFIG, "--external-http-port", "80.5"], "--external-http-port");
    usageError([...WITH_CONFIG, "--external-http-port", " 80"], "--external-http-port");
    usageError(
      [...WITH_CONFIG, "--installed-extensions-collection-interval", "1h"],
      "--installed-extensions-collection-interval",
    );
    usageError(
      [...WITH_CONFIG, "--installed-extensions-collection-interval=-5"],
      "--installed-extensions-collection-interval",
    );
    usageError([...WITH_CONFIG, "--pg-init-timeout", "x"], "--pg-init-timeout");
    usageError([...WITH_CONFIG, "--pg-init-timeout", "99999999999999999999"], "--pg-init-timeout");
  });

  test("a repeated flag, in long or short form", () => {
    usageError([...WITH_CONFIG, "--pgdata", "/b"], "--pgdata", "multiple times");
    usageError([...WITH_CONFIG, "-D", "/b"], "--pgdata", "multiple times");
    usageError([...WITH_CONFIG, "--dev", "--dev"], "--dev", "multiple times");
    usageError(
      [...WITH_CONFIG, "--external-http-port", "1", "--external-http-port", "2"],
      "--external-http-port",
      "multiple times",
    );
  });

  test("a switch does not take a value", () => {
    usageError([...WITH_CONFIG, "--dev=true"], "--dev", "'true'");
    usageError([...WITH_CONFIG, "--resize-swap-on-bind=1"], "--resize-swap-on-bind");
  });

  test("missing required flags are all named", () => {
    const msg = usageError(["-c", "/cfg"], "required", "--pgdata", "--connstr", "--compute-id");
    expect(msg).toContain("not provided");
    usageError(["-D", "/d", "-C", CONNSTR, "-c", "/cfg"], "--compute-id");
  });

  test("conflicts between explicitly given flags", () => {
    usageError([...BASE, "-c", "/cfg", "-p", "http://cp"], "--config", "--control-plane-uri");
    usageError([...BASE, "-S", "/spec", "-c", "/cfg"], "--spec-path", "--config");
    usageError([...BASE, "-S", "/spec", "-p", "http://cp"], "--spec-path", "--control-plane-uri");
    usageError(
      [...WITH_CONFIG, "--http-port", "4000", "--external-http-port", "3080"],
      "--http-port",
      "--external-http-port",
    );
    usageError(
      [...WITH_CONFIG, "--internal-http-port", "3081", "--http-port", "4000"],
      "--http-port",
      "--internal-http-port",
    );
  });

  test("a default never conflicts: --http-port alone is fine", () => {
    const p = run([...WITH_CONFIG, "--http-port", "4000"]);
    expect(p.httpPort).toBe(4000);
  });

  test("none of --config, --control-plane-uri, --spec-path", () => {
    usageError(BASE, "--config", "--control-plane-uri", "--spec-path", "required");
  });

  test("connstr must be a URL (a configuration error, exit 1), named without echoing it", () => {
    const secret = "host=localhost password=hunter2";
    const msg = configError(
      ["-D", "/d", "-C", secret, "-i", "c", "-c", "/cfg"],
      "cannot parse connstr as a URL",
      "--connstr",
    );
    expect(msg).not.toContain("hunter2");
    // The reference's own unit tests pass `--connstr=test`, which clap accepts; main() rejects it.
    configError(["--pgdata=test", "--connstr=test", "--compute-id=test", "-c", "/cfg"], "connstr");
  });

  test("--privileged-role-name allows only lowercase letters and '_'", () => {
    expect(run([...WITH_CONFIG, "--privileged-role-name", "my_superuser"]).privilegedRoleName).toBe(
      "my_superuser",
    );
    for (const bad of ["NeonSuperuser", "$'neon_superuser", "", "neon1", "neon-superuser"]) {
      usageError(
        [...WITH_CONFIG, "--privileged-role-name", bad],
        "--privileged-role-name can only contain lowercase letters and underscores",
      );
    }
  });

  test("errors are reported in command-line order, like clap", () => {
    usageError(["--bogus", "--external-http-port", "x"], "--bogus");
    usageError(["--external-http-port", "x", "--bogus"], "--external-http-port");
  });
});

describe("--remote-ext-base-url", () => {
  const url = (v: string) => run([...WITH_CONFIG, "--remote-ext-base-url", v]).remoteExtBaseUrl;

  test("exactly one trailing '/'", () => {
    expect(url("https://example.com/subpath")).toBe("https://example.com/subpath/");
    expect(url("https://example.com/subpath///")).toBe("https://example.com/subpath/");
    expect(url("https://example.com//")).toBe(new URL("https://example.com").href);
    expect(url("http://pg-ext-s3-gateway")).toBe("http://pg-ext-s3-gateway/");
  });

  test("query parameters are rejected", () => {
    usageError(
      [...WITH_CONFIG, "--remote-ext-base-url", "https://example.com?hello=world"],
      "parameters detected in remote extensions base URL",
      "--remote-ext-base-url",
    );
  });

  test("a non-URL is rejected", () => {
    usageError([...WITH_CONFIG, "-r", "not a url"], "--remote-ext-base-url");
  });
});

describe("--lakebase-mode", () => {
  test("true and false", () => {
    expect(run([...WITH_CONFIG, "--lakebase-mode", "true"]).lakebaseMode).toBe(true);
    expect(run([...WITH_CONFIG, "--lakebase-mode=false"]).lakebaseMode).toBe(false);
  });

  test("needs an explicit true or false", () => {
    usageError([...WITH_CONFIG, "--lakebase-mode"], "--lakebase-mode", "value is required");
    usageError(
      [...WITH_CONFIG, "--lakebase-mode", "--dev"],
      "--lakebase-mode",
      "value is required",
    );
    usageError([...WITH_CONFIG, "--lakebase-mode", "yes"], "--lakebase-mode", "'yes'");
    usageError([...WITH_CONFIG, "--lakebase-mode", "TRUE"], "--lakebase-mode");
  });

  test("--http-port P gives external P and internal P+1 in lakebase mode only", () => {
    const lb = run([...WITH_CONFIG, "--lakebase-mode", "true", "--http-port", "4000"]);
    expect([lb.externalHttpPort, lb.internalHttpPort]).toEqual([4000, 4001]);
    const plain = run([...WITH_CONFIG, "--http-port", "4000"]);
    expect([plain.externalHttpPort, plain.internalHttpPort]).toEqual([3080, 3081]);
    const lbNoHttp = run([...WITH_CONFIG, "--lakebase-mode", "true"]);
    expect([lbNoHttp.externalHttpPort, lbNoHttp.internalHttpPort]).toEqual([3080, 3081]);
  });

  test("--http-port 65535 leaves no internal port in lakebase mode", () => {
    usageError([...WITH_CONFIG, "--lakebase-mode", "true", "--http-port", "65535"], "--http-port");
  });
});

describe("enum flags", () => {
  test("--log-level and --log-format reject unknown values", () => {
    usageError([...WITH_CONFIG, "--log-level", "loud"], "--log-level", "'loud'");
    usageError([...WITH_CONFIG, "--log-format", "xml"], "--log-format", "'xml'");
  });
});

describe("-S / --spec-path", () => {
  test("is a config source on its own", () => {
    const p = run([...BASE, "-S", "/tmp/spec.json"]);
    expect(p.specPath).toBe("/tmp/spec.json");
    expect(p.configPath).toBeNull();
    expect(p.controlPlaneUri).toBeNull();
    expect(run([...BASE, "--spec-path=/s"]).specPath).toBe("/s");
  });
});

describe("--help", () => {
  test("-h and --help return help, even without the required flags", async () => {
    for (const argv of [["--help"], ["-h"], ["-D", "/x", "--help", "--bogus"]]) {
      const r = parseCli(argv, {});
      expect(r.kind).toBe("help");
    }
    const r = parseCli(["-h"], {});
    if (r.kind !== "help") throw new Error("expected help");
    expect(await helpText()).toBe(r.text);
  });

  test("an error before --help still wins, as in clap", () => {
    usageError(["--bogus", "--help"], "--bogus");
  });

  test("lists every flag with its short form, default and possible values", () => {
    const r = parseCli(["--help"], {});
    if (r.kind !== "help") throw new Error("expected help");
    const text = r.text;
    for (const [name, def] of Object.entries(command.args as Record<string, ArgDef>)) {
      const short = typeof def.alias === "string" ? `-${def.alias}, ` : "";
      expect(text).toContain(`${short}--${name}`);
      if (def.default !== undefined) expect(text).toContain(`[default: ${def.default}]`);
      if (def.type === "enum") expect(text).toContain(def.options!.join(", "));
    }
    expect(text).toContain("POSTGRES_PATH");
    expect(text).toContain("[default: neon_superuser]");
    expect(text).toContain("[default: 3080]");
    expect(text).toContain("[default: 0.0.0.0:10301]");
    // The subcommands command.ts dispatches are named, with where their own help is.
    for (const [name] of SUBCOMMANDS) expect(text).toContain(`  ${name} `);
    expect(text).toContain("compute_ctl spec plan --help");
    // No terminal colour codes: the text may be piped.
    expect(text).not.toContain("\u001b[");
  });
});

describe("--version", () => {
  test("prints name, version, build tag and target", () => {
    const r = parseCli(["--version"], {});
    expect(r).toEqual({
      kind: "version",
      text: `compute_ctl ${VERSION} (build_tag ${BUILD_TAG}, target ${BUILD_TARGET})`,
    });
  });

  test("takes no value", () => {
    usageError(["--version=1"], "--version");
  });
});

describe("citty command", () => {
  test("carries the name and version", async () => {
    const meta = await (typeof command.meta === "function" ? command.meta() : command.meta);
    expect(meta?.name).toBe("compute_ctl");
    expect(meta?.version).toBe(VERSION);
  });
});
