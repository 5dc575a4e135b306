// Turning a downloaded extension archive (tar.zst) into files in Postgres's share and lib
// directories. The whole archive is decompressed, parsed and checked in memory before anything is
// written, so a refused archive leaves the disk untouched. Accepted: regular files and
// directories under `share/extension/` and `lib/` (plus the directory entries leading to them).
// Refused: absolute paths, `..`, links, devices, FIFOs, anything else.
//
// The reference unpacks into `<pgbin dir>/../download_extensions` with the tar crate's defaults
// and then renames the two subtrees into place, ignoring rename failures; it writes whatever the
// archive holds into the staging directory first. Here files go straight to a temporary name
// beside their destination and are renamed over it, so a reader never sees a half-written file.
import { lstat, mkdir, rename, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { TarError } from "../util/tar.ts";
import { readTarStream, type TarEntry, TarStreamError } from "./tar.ts";

/** An archive refused as malformed or unsafe; nothing was written. */
export class ArchiveError extends Error {
  override name = "ArchiveError";
}

export interface InstallDirs {
  /** `$(pg_config --sharedir)/extension` */
  shareExtension: string;
  /** `$(pg_config --pkglibdir)` */
  pkglibdir: string;
}

export interface InstallPlan {
  /** Directories to create, parents first. */
  dirs: string[];
  files: { dest: string; data: Uint8Array; mode: number }[];
}

/** Archive paths that are only the way to the accepted subtrees: accepted, nothing to create. */
const SKELETON = new Set(["", "share", "share/extension", "lib"]);

const KIND_NAMES: Record<TarEntry["kind"], string> = {
  file: "regular file",
  directory: "directory",
  hardlink: "hard link",
  symlink: "symbolic link",
  chardev: "character device",
  blockdev: "block device",
  fifo: "FIFO",
  other: "entry",
};

/** Strips `./` prefixes and one trailing `/`; refuses paths that could leave the target. */
function normalise(raw: string): string {
  if (raw.includes("\0")) throw new ArchiveError(`refusing archive entry with a NUL byte`);
  if (raw.startsWith("/")) throw new ArchiveError(`refusing absolute path '${raw}' in archive`);
  let p = raw;
  while (p.startsWith("./")) p = p.slice(2);
  if (p === ".") p = "";
  if (p.endsWith("/")) p = p.slice(0, -1);
  if (p === "") return p;
  for (const part of p.split("/")) {
    if (part === "..") throw new ArchiveError(`refusing path with '..' in archive: '${raw}'`);
    if (part === "" || part === ".") {
      throw new ArchiveError(`refusing non-canonical path '${raw}' in archive`);
    }
  }
  return p;
}

function destination(rel: string, dirs: InstallDirs): string | null {
  if (rel.startsWith("share/extension/")) {
    return join(dirs.shareExtension, rel.slice("share/extension/".length));
  }
  if (rel.startsWith("lib/")) return join(dirs.pkglibdir, rel.slice("lib/".length));
  return null;
}

/** Permission bits only (no setuid/setgid/sticky); the owner can always read and write. */
function fileMode(mode: number): number {
  return (mode & 0o777) | 0o600;
}

/**
 * Checks every entry and maps it to a destination; throws ArchiveError on the first refused one.
 * Pure: touches no file.
 */
export function planFromEntries(entries: TarEntry[], dirs: InstallDirs): InstallPlan {
  const kinds = new Map<string, "file" | "directory">();
  const files = new Map<string, { dest: string; data: Uint8Array; mode: number }>();
  const dirList: string[] = [];
  const addDir = (dest: string, root: string) => {
    // Parents inside the archive's subtree are created too (an archive may omit dir entries).
    const chain: string[] = [];
    for (let d = dest; d !== root && d.startsWith(`${root}/`); d = dirname(d)) chain.unshift(d);
    for (const d of chain) {
      const seen = kinds.get(d);
      if (seen === "file")
        throw new ArchiveError(`archive has both a file and a directory at ${d}`);
      if (seen === undefined) {
        kinds.set(d, "directory");
        dirList.push(d);
      }
    }
  };
  for (const e of entries) {
    const rel = normalise(e.path);
    if (e.kind !== "file" && e.kind !== "directory") {
      const what = e.kind === "other" ? `entry of type '${e.typeflag}'` : KIND_NAMES[e.kind];
      throw new ArchiveError(`refusing ${what} '${e.path}' in archive`);
    }
    if (SKELETON.has(rel)) {
      if (e.kind !== "directory") throw new ArchiveError(`refusing file '${e.path}' in archive`);
      continue;
    }
    const dest = destination(rel, dirs);
    if (dest === null) {
      throw new ArchiveError(
        `refusing '${e.path}' in archive: only share/extension/ and lib/ may be installed`,
      );
    }
    const root = rel.startsWith("lib/") ? dirs.pkglibdir : dirs.shareExtension;
    if (e.kind === "directory") {
      addDir(dest, root);
      continue;
    }
    addDir(dirname(dest), root);
    const seen = kinds.get(dest);
    if (seen === "directory") {
      throw new ArchiveError(`archive has both a file and a directory at ${dest}`);
    }
    kinds.set(dest, "file");
    // A repeated file entry replaces the earlier one, as tar extraction would.
    files.set(dest, { dest, data: e.data, mode: fileMode(e.mode) });
  }
  return { dirs: dirList, files: [...files.values()] };
}

/** Entries one archive may hold (an extension has hundreds; thousands would be unusual). */
export const DEFAULT_MAX_ENTRIES = 50_000;

/**
 * zstd-decompresses and parses as a stream, with caps (a hostile archive could expand without
 * bound, or hold millions of empty files): past `maxTarBytes` unpacked or `maxEntries` entries
 * it is refused as soon as the header that crosses the line is read. Then plans the install.
 * Throws ArchiveError for anything refused.
 */
export async function planArchive(
  compressed: Uint8Array,
  dirs: InstallDirs,
  maxTarBytes: number,
  maxEntries = DEFAULT_MAX_ENTRIES,
): Promise<InstallPlan> {
  const stream = new Blob([compressed])
    .stream()
    .pipeThrough(new DecompressionStream("zstd")) as ReadableStream<Uint8Array>;
  let entries: TarEntry[];
  try {
    entries = await readTarStream(stream, { maxBytes: maxTarBytes, maxEntries });
  } catch (err) {
    if (err instanceof TarStreamError) {
      throw new ArchiveError(`archive is not valid zstd: ${err.message}`, { cause: err });
    }
    if (err instanceof TarError) throw new ArchiveError(err.message, { cause: err });
    throw err;
  }
  return planFromEntries(entries, dirs);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function lstatOrNull(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return null;
    throw err;
  }
}

/**
 * Writes a plan. First checks the destinations (a directory where a file goes, a file or link
 * where a directory goes), so a conflict is found before anything is written; then creates the
 * directories and writes each file to a temporary sibling that is renamed over the destination.
 */
export async function installPlan(plan: InstallPlan): Promise<void> {
  for (const d of plan.dirs) {
    const st = await lstatOrNull(d);
    // A symlink here could point anywhere, so it is not followed.
    if (st && !st.isDirectory()) throw new Error(`cannot install directory ${d}: not a directory`);
  }
  for (const f of plan.files) {
    const st = await lstatOrNull(f.dest);
    if (st?.isDirectory()) throw new Error(`cannot install file ${f.dest}: it is a directory`);
  }
  for (const d of plan.dirs) await mkdir(d, { recursive: true, mode: 0o755 });
  for (const f of plan.files) {
    const tmp = join(
      dirname(f.dest),
      `.${basename(f.dest)}.${process.pid}.${Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString("hex")}.tmp`,
    );
    try {
      await writeFile(tmp, f.data, { flag: "wx", mode: f.mode });
      await rename(tmp, f.dest);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw new Error(`failed to install ${f.dest}: ${errText(err)}`, { cause: err });
    }
  }
}
