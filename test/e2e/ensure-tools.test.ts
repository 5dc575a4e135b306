// scripts/ensure-tools.sh on a machine without Bun: it installs Bun with npm into .tools/ of the
// checkout. Run in a sandbox checkout whose machine-wide npm config (the global npmrc under npm's
// prefix) names a registry that answers 404: the request must reach that registry (the
// configuration is honoured although the install uses --prefix), npm's own error must be shown,
// the script must say what went wrong and how long a first run takes, and it must give up within
// seconds rather than retrying in silence.
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../support/binary.ts";
import { cleanup, makeUserDir } from "../support/proc.ts";

afterAll(cleanup);

const npm = Bun.which("npm", { PATH: "/usr/bin:/bin:/usr/local/bin" });
const withNpm = npm ? test : test.skip;
if (!npm) console.warn("skipping the ensure-tools test: npm is not installed");

withNpm(
  "a failing install shows npm's error, honours the machine-wide npmrc and stops quickly",
  async () => {
    const requests: string[] = [];
    const registry = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        requests.push(new URL(req.url).pathname);
        return Response.json({ error: "Not found" }, { status: 404 });
      },
    });
    try {
      const dir = await makeUserDir("ensure-tools-");
      mkdirSync(join(dir, "scripts"));
      copyFileSync(join(ROOT, "scripts/ensure-tools.sh"), join(dir, "scripts/ensure-tools.sh"));
      // npm's global prefix, with the machine-wide config file inside it.
      mkdirSync(join(dir, "prefix/etc"), { recursive: true });
      writeFileSync(join(dir, "prefix/etc/npmrc"), `registry=http://127.0.0.1:${registry.port}/\n`);
      mkdirSync(join(dir, "home"));
      const t0 = performance.now();
      const p = Bun.spawn(["bash", "-c", "source scripts/ensure-tools.sh"], {
        cwd: dir,
        env: {
          // No bun on this PATH; npm and node are in /usr/bin on Debian.
          PATH: "/usr/bin:/bin",
          HOME: join(dir, "home"),
          NPM_CONFIG_PREFIX: join(dir, "prefix"),
          NPM_CONFIG_CACHE: join(dir, "npm-cache"),
        },
        stdout: "pipe",
        stderr: "pipe",
        timeout: 120_000,
      });
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      const seconds = (performance.now() - t0) / 1000;
      expect({ code, out }).toEqual({ code: 1, out: "" });
      // The registry from the machine-wide npmrc was asked for the package.
      expect(requests).toContain("/bun");
      const lines = err.trimEnd().split("\n");
      expect(lines[0]).toBe(
        "installing bun@1.4.5 from the npm registry into .tools/ (first run only: a ~40 MB download, usually 5-60 s)",
      );
      // npm's own words, then ours, last.
      expect(err).toContain("npm error 404");
      expect(lines[lines.length - 1]).toBe(
        "error: npm could not install bun@1.4.5 (npm's error is above); fix that, or install Bun 1.4.5 yourself (https://bun.sh) and run this again",
      );
      expect(err).not.toContain("install Node.js");
      // A 404 is not retried; even a refused connection costs one retry 2 s later, not ~70 s.
      expect(seconds).toBeLessThan(30);
    } finally {
      registry.stop(true);
    }
  },
  120_000,
);
