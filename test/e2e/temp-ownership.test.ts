// Temporary artefacts belong to the user who makes them. As root, a second user (postgres) runs
// the test support's install of the binary and the basebackup template after root ran them:
// the user's artefacts land in its own directory, a stale copy it cannot remove is no error, and
// the binary copy is gone when its process ends.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  chownSync,
  existsSync,
  mkdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { compiledBinaryInfo, ROOT } from "../support/binary.ts";
import { cleanup, ownedPrivately, RUN_AS, spawnAs, TEST_TMP, userTmpDir } from "../support/proc.ts";

setDefaultTimeout(180_000);
afterAll(cleanup);

/** Whether the second user can read the checkout (its test support is what it runs). */
function checkoutReadableBy(id: { uid: number; gid: number }): boolean {
  const r = Bun.spawnSync(["test", "-r", join(ROOT, "test/support/binary.ts")], {
    uid: id.uid,
    gid: id.gid,
  });
  return r.exitCode === 0;
}

const skipWhy = !RUN_AS
  ? "they need root to run as postgres"
  : !checkoutReadableBy(RUN_AS)
    ? `the postgres user cannot read the checkout at ${ROOT}`
    : null;
const asSecondUser = skipWhy === null ? test : test.skip;
if (skipWhy !== null) console.warn(`skipping the second-user tests: ${skipWhy}`);

describe("this user's temp directory", () => {
  test("is <tmp>/compute_ctl-<uid>, owned by this user, writable by nobody else", () => {
    const uid = process.getuid?.() ?? 0;
    const dir = userTmpDir();
    expect(dir).toBe(join(TEST_TMP, `compute_ctl-${uid}`));
    expect(ownedPrivately(dir, uid)).toBe(true);
    // Readable and searchable by others: the postgres user executes the binary root puts there.
    expect(statSync(dir).mode & 0o777).toBe(0o755);
  });
});

describe("a second user", () => {
  const planted: string[] = [];
  beforeAll(async () => {
    await compiledBinaryInfo(); // the build is root's, into dist/ of the checkout
    if (!RUN_AS) return;
    // A stale-looking copy of root's inside the second user's directory: its sweep tries to
    // remove it, cannot (root owns what is inside), and must carry on.
    const theirs = join(TEST_TMP, `compute_ctl-${RUN_AS.uid}`);
    mkdirSync(theirs, { recursive: true, mode: 0o755 });
    chownSync(theirs, RUN_AS.uid, RUN_AS.gid);
    const dir = join(theirs, `bin-rootowned${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "compute_ctl"), "root's");
    const old = new Date(Date.now() - 3600_000);
    utimesSync(dir, old, old);
    planted.push(dir);
  });
  afterAll(() => {
    for (const d of planted) rmSync(d, { recursive: true, force: true });
  });

  asSecondUser(
    "installs the binary and builds the template in its own directory, and removes the copy when it ends",
    async () => {
      const script = `
        import { compiledBinary } from ${JSON.stringify(join(ROOT, "test/support/binary.ts"))};
        import { basebackupTemplate } from ${JSON.stringify(join(ROOT, "test/fakes/basebackup-template.ts"))};
        import { userTmpDir } from ${JSON.stringify(join(ROOT, "test/support/proc.ts"))};
        const bin = await compiledBinary();
        const v = Bun.spawnSync([bin, "--version"]);
        const tpl = await basebackupTemplate();
        console.log(JSON.stringify({ bin, version: v.stdout.toString().trim(), tpl: tpl.tarGzPath, mine: userTmpDir() }));
      `;
      const p = spawnAs([process.execPath, "-e", script], {
        cwd: TEST_TMP,
        env: { TMPDIR: undefined },
      });
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      expect({ code, err }).toEqual({ code: 0, err: "" });
      const r = JSON.parse(out.trim().split("\n").pop() ?? "{}") as Record<string, string>;
      const mine = join(TEST_TMP, `compute_ctl-${RUN_AS?.uid}`);
      expect(r.mine).toBe(mine);
      expect(r.version).toStartWith("compute_ctl ");
      expect(r.bin).toStartWith(`${mine}/bin-`);
      expect(r.tpl).toStartWith(`${mine}/basebackup-templates/`);
      expect(statSync(r.tpl ?? "").uid).toBe(RUN_AS?.uid ?? -1);
      // The copy went with its process; the template cache stays for the next run.
      expect(existsSync(join(r.bin ?? "", ".."))).toBe(false);
      expect(existsSync(r.tpl ?? "")).toBe(true);
      // Root's files were left alone, and not being able to remove them was no error.
      for (const d of planted) expect(existsSync(join(d, "compute_ctl"))).toBe(true);
    },
  );
});
