#!/usr/bin/env bun
// Cross-compiles compute_ctl into one self-contained executable per target:
//   bun build.ts [--target x64|arm64|darwin-arm64|darwin-x64|all] [--outdir dist] [--no-bytecode]
// --target may repeat or take a comma list; the default is linux x64 + linux arm64 (glibc).
// Bun fetches the runtime of a foreign target from the npm registry, so any host builds any target.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = import.meta.dir;

export const TARGETS = {
  x64: "bun-linux-x64",
  arm64: "bun-linux-arm64",
  "darwin-arm64": "bun-darwin-arm64",
  "darwin-x64": "bun-darwin-x64",
} as const satisfies Record<string, Bun.Build.CompileTarget>;
export type TargetName = keyof typeof TARGETS;
const DEFAULT_TARGETS: TargetName[] = ["x64", "arm64"];

/** `dist/compute_ctl-linux-x64`, `dist/compute_ctl-darwin-arm64`, ... */
export function outputName(target: TargetName): string {
  return "compute_ctl-" + TARGETS[target].slice("bun-".length);
}

/**
 * What a build is keyed by: the newest mtime and the number of the inputs. test/support/binary.ts
 * compares it with the stamp written next to each output to skip rebuilding an up-to-date binary.
 */
export function sourceKey(buildTag: string = process.env.BUILD_TAG || "latest"): string {
  let newest = 0;
  let count = 0;
  const visit = (path: string) => {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const name of readdirSync(path)) visit(join(path, name));
      return;
    }
    count++;
    newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of [
    "src",
    "build.ts",
    "package.json",
    "bun.lock",
    "tsconfig.json",
    "build-profile",
  ]) {
    visit(join(ROOT, p));
  }
  return `${newest}:${count}:${buildTag}`;
}

/** Written as `<output>.stamp` (JSON) after a successful build. */
export interface BuildStamp {
  key: string;
  target: string;
  version: string;
  buildTag: string;
  path: string;
  size: number;
  mtimeMs: number;
}

export function stampPath(outfile: string): string {
  return outfile + ".stamp";
}

/** package.json version, plus `+<git describe --always --dirty>` when this is a git checkout. */
export async function buildVersion(): Promise<string> {
  if (process.env.COMPUTE_CTL_VERSION) return process.env.COMPUTE_CTL_VERSION;
  const pkg = (await Bun.file(join(ROOT, "package.json")).json()) as { version: string };
  try {
    const describe = execFileSync("git", ["describe", "--always", "--dirty"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 10_000,
    })
      .toString()
      .trim();
    // `+` is semver build metadata: the release stays comparable, the commit stays visible.
    return describe ? `${pkg.version}+${describe}` : pkg.version;
  } catch {
    return pkg.version; // not a checkout, no git, or git refusing a foreign-owned repo
  }
}

/**
 * JavaScriptCore's tier-up thresholds are multiplied by this in the executable. compute_ctl runs
 * most of its code a few times (module setup, the start, a spec apply) and then idles; at the
 * normal policy that run-once code reaches the baseline and DFG JITs, whose compilers' machine
 * code then stays resident for the life of the process. At 16 an Empty compute idled ~2.9 MiB
 * and a running one ~1.5 MiB lower than at 1; 64 keeps the DFG out of a running compute whose
 * basebackup is extracted by a child process (another ~2 MiB). Code that really is hot (the
 * /status path under load, a large spec's planning) still reaches the optimizing tiers within
 * a fraction of a second. A child process that runs one CPU-heavy job may set the normal policy
 * for itself with Bun.unsafe.setJITPolicy(1).
 */
export const JIT_POLICY = 64;

/**
 * Profiles of the functions an Empty and a running compute use (recorded by
 * scripts/bytecode-order.ts, most common start first): the executable's bytecode is laid out with
 * those functions together at the front, so a compute maps ~2.2-2.4 MiB fewer bytecode pages. A
 * profile from an older source state still applies to the functions that did not change.
 */
export const BYTECODE_ORDER_FILES = ["running.txt", "empty.txt"].map((name) =>
  join(ROOT, "build-profile", name),
);

export interface BuildOptions {
  /** src/main.ts unless --entry (used to exercise the build itself while main does not compile). */
  entry: string;
  targets: TargetName[];
  outdir: string;
  bytecode: boolean;
}

async function compileOne(
  entry: string,
  target: TargetName,
  outfile: string,
  defines: Record<string, string>,
  bytecode: boolean,
): Promise<void> {
  const orderFiles = BYTECODE_ORDER_FILES.filter((f) => existsSync(f));
  const result = await Bun.build({
    entrypoints: [entry],
    target: "bun",
    format: "esm",
    // Bytecode skips parsing at startup; the sourcemap is embedded in the executable either way,
    // so stack traces point at src/ lines. Identifiers stay unminified for readable traces.
    bytecode,
    // Separate chunks for dynamic imports: the entry (src/main.ts) is then a few lines that run
    // before the rest is loaded, so its signal handlers are in place within milliseconds of exec.
    splitting: true,
    sourcemap: "inline",
    minify: { syntax: true, whitespace: true, identifiers: false },
    define: defines,
    throw: false,
    compile: {
      target: TARGETS[target],
      outfile,
      // A supervisor must not pick up a stray .env or bunfig.toml from the directory it runs in.
      autoloadDotenv: false,
      autoloadBunfig: false,
      jitPolicy: JIT_POLICY,
      // A missing profile only costs memory; the build goes on without it.
      bytecodeOrder: bytecode && orderFiles.length > 0 ? orderFiles : false,
    },
  });
  // With splitting, Bun also writes each chunk's source map beside the executable although the
  // maps are embedded in it: stray files nothing reads.
  for (const name of readdirSync(dirname(outfile))) {
    if (/^chunk-[0-9a-z]+\.js\.map$/.test(name))
      rmSync(join(dirname(outfile), name), { force: true });
  }
  if (!result.success) {
    const messages = result.logs.map((l) => {
      const at = l.position ? `${l.position.file}:${l.position.line}:${l.position.column}: ` : "";
      return `  ${at}${l.message}`;
    });
    throw new BuildError(`building ${TARGETS[target]} failed:\n${messages.join("\n")}`, {
      inSource: result.logs.some((l) => l.level === "error" && l.position),
    });
  }
}

class BuildError extends Error {
  /** The error points into the sources (syntax, unresolved import): no point in a retry. */
  readonly inSource: boolean;
  constructor(message: string, opts: { inSource: boolean }) {
    super(message);
    this.inSource = opts.inSource;
  }
}

export async function build(opts: BuildOptions): Promise<BuildStamp[]> {
  const version = await buildVersion();
  const buildTag = process.env.BUILD_TAG || "latest";
  // A build of another entry must never pass for an up-to-date compute_ctl.
  const defaultEntry = opts.entry === join(ROOT, "src/main.ts");
  const key = (defaultEntry ? "" : `entry=${opts.entry}:`) + sourceKey(buildTag);
  const stamps: BuildStamp[] = [];
  for (const target of opts.targets) {
    const outfile = resolve(opts.outdir, outputName(target));
    // define replaces these reads with literals, so the runtime environment cannot change them.
    const defines = {
      "process.env.COMPUTE_CTL_VERSION": JSON.stringify(version),
      "process.env.BUILD_TAG": JSON.stringify(buildTag),
      "process.env.COMPUTE_CTL_TARGET": JSON.stringify(TARGETS[target]),
    };
    rmSync(stampPath(outfile), { force: true });
    const t0 = performance.now();
    try {
      await compileOne(opts.entry, target, outfile, defines, opts.bytecode);
    } catch (err) {
      if (!opts.bytecode || (err instanceof BuildError && err.inSource)) throw err;
      // Bytecode is only a startup optimisation; a build without it is still correct.
      console.error(`warning: ${(err as Error).message}\nwarning: retrying without bytecode`);
      await compileOne(opts.entry, target, outfile, defines, false);
    }
    // The sidecar map duplicates the embedded one; keep dist/ to the executables.
    rmSync(outfile + ".map", { force: true });
    const st = statSync(outfile);
    const stamp: BuildStamp = {
      key,
      target: TARGETS[target],
      version,
      buildTag,
      path: outfile,
      size: st.size,
      mtimeMs: st.mtimeMs,
    };
    writeFileSync(stampPath(outfile), JSON.stringify(stamp, null, 2) + "\n");
    stamps.push(stamp);
    const mb = (st.size / 1024 / 1024).toFixed(1);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const shown = relative(process.cwd(), outfile);
    console.log(`${shown.startsWith("..") ? outfile : shown}  ${mb} MiB  (${secs}s)`);
  }
  return stamps;
}

function parseArgs(argv: string[]): BuildOptions {
  const targets: TargetName[] = [];
  let outdir = join(ROOT, "dist");
  let bytecode = true;
  let entry = join(ROOT, "src/main.ts");
  const usage = `usage: bun build.ts [--target ${Object.keys(TARGETS).join("|")}|all] [--outdir dir] [--no-bytecode] [--entry file]`;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s) : [arg];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${usage}`);
      return v;
    };
    switch (flag) {
      case "--target":
        for (const t of value().split(",")) {
          if (t === "all") targets.push(...(Object.keys(TARGETS) as TargetName[]));
          else if (t in TARGETS) targets.push(t as TargetName);
          else throw new Error(`unknown target '${t}'\n${usage}`);
        }
        break;
      case "--outdir":
        outdir = resolve(value());
        break;
      case "--entry":
        entry = resolve(value());
        break;
      case "--no-bytecode":
        bytecode = false;
        break;
      case "-h":
      case "--help":
        console.log(usage);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument '${arg}'\n${usage}`);
    }
  }
  return {
    entry,
    targets: [...new Set(targets.length ? targets : DEFAULT_TARGETS)],
    outdir,
    bytecode,
  };
}

if (import.meta.main) {
  try {
    await build(parseArgs(process.argv.slice(2)));
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    process.exit(1);
  }
}
