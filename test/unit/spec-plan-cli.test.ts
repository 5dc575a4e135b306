import { describe, expect, test } from "bun:test";
import { parseSpecPlanCli } from "../../src/cli.ts";
import { ConfigError, UsageError } from "../../src/errors.ts";
import { splitKeywordValue } from "../../src/util/connstring.ts";

const URL_ = "postgresql://cloud_admin@127.0.0.1:5432/postgres";

describe("compute_ctl spec plan flags (the run's scanner and rules)", () => {
  test("long, short and = forms; the default role name", () => {
    const r = parseSpecPlanCli(["plan", "-C", URL_, "--spec-path=/s.json"]);
    expect(r.kind).toBe("run");
    if (r.kind !== "run") return;
    expect(r.params.connstr.href).toBe(URL_);
    expect(r.params.specPath).toBe("/s.json");
    expect(r.params.configPath).toBeNull();
    expect(r.params.privilegedRoleName).toBe("neon_superuser");
  });

  test("help, before or after plan", () => {
    expect(parseSpecPlanCli(["--help"]).kind).toBe("help");
    expect(parseSpecPlanCli(["plan", "-h"]).kind).toBe("help");
  });

  test("usage errors in clap's wording", () => {
    const bad = (argv: string[], text: string) => {
      expect(() => parseSpecPlanCli(argv)).toThrow(UsageError);
      expect(() => parseSpecPlanCli(argv)).toThrow(text);
    };
    bad([], "missing subcommand for 'spec'");
    bad(["apply"], "unknown subcommand 'spec apply'");
    bad(
      ["plan", "-S", "/s"],
      "the following required arguments were not provided: --connstr <URL>",
    );
    bad(["plan", "--connstr", URL_], "one of --spec-path or --config is required");
    bad(["plan", "--connstr", URL_, "-S", "/s", "-c", "/c"], "cannot be used with");
    bad(
      ["plan", "--connstr", URL_, "-S", "/s", "--privileged-role-nam", "x"],
      "(did you mean '--privileged-role-name'?)",
    );
    bad(
      ["plan", "--connstr", URL_, "-S", "/s", "--privileged-role-name", "Bad"],
      "can only contain lowercase letters and underscores",
    );
    bad(["plan", "--connstr"], "a value is required for '--connstr <URL>'");
  });

  test("a connstr that is not a URL is a configuration error", () => {
    expect(() => parseSpecPlanCli(["plan", "--connstr", "nope", "-S", "/s"])).toThrow(ConfigError);
  });
});

describe("connection-string splitting", () => {
  test("a trailing lone backslash is dropped, as libpq does; '' is a quoted empty value", () => {
    expect(splitKeywordValue("b='' a=x\\")).toEqual([
      { key: "b", value: "", quoted: true },
      { key: "a", value: "x", quoted: false },
    ]);
  });
});
