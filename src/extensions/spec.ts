// What the spec says about remote extensions: which extensions this
// compute may use, how a library name maps to an extension, where its archive lives, and which
// libraries shared_preload_libraries asks for.
import type { RemoteExtSpec } from "../api/spec.ts";

/** An extension or library the spec does not allow or does not know (the route's 404). */
export class ExtensionNotFoundError extends Error {
  override name = "ExtensionNotFoundError";
}

/** Listed in public_extensions or custom_extensions. */
export function isAllowed(rspec: RemoteExtSpec, ext: string): boolean {
  return !!(rspec.public_extensions?.includes(ext) || rspec.custom_extensions?.includes(ext));
}

/**
 * The reference's RemoteExtSpec::get_ext, returning the extension name: a library name loses
 * everything from the first `.so` on and is mapped through library_index; the extension must be
 * allowed and have extension_data.
 */
export function resolveExtension(
  rspec: RemoteExtSpec,
  filename: string,
  isLibrary: boolean,
): string {
  let ext = filename;
  if (isLibrary) {
    const lib = filename.replace(/\.so.*/s, "");
    const mapped = Object.hasOwn(rspec.library_index, lib) ? rspec.library_index[lib] : undefined;
    if (mapped === undefined) throw new ExtensionNotFoundError(`library ${lib} is not found`);
    ext = mapped;
  }
  if (!isAllowed(rspec, ext)) throw new ExtensionNotFoundError(`extension ${ext} is not found`);
  if (!Object.hasOwn(rspec.extension_data, ext)) {
    throw new ExtensionNotFoundError(`real_ext_name ${ext} is not found`);
  }
  return ext;
}

/** Go's names for the architectures (Kubernetes' convention), else Node's own name. */
export function goArch(arch: string = process.arch): string {
  if (arch === "x64") return "amd64";
  if (arch === "arm64") return "arm64";
  return arch;
}

/** `{build_tag}/{arch}/v{major}/extensions/{ext}.tar.zst`; `archive_path` in the spec is unused. */
export function archivePath(buildTag: string, arch: string, pgMajor: number, ext: string): string {
  return `${buildTag}/${arch}/v${pgMajor}/extensions/${ext}.tar.zst`;
}

const SKIPPED_LIBS = new Set(["neon", "databricks_auth", ""]);

function splitLibs(value: string): string[] {
  return value.split(/[,' ]/).filter((s) => !SKIPPED_LIBS.has(s));
}

/**
 * The libraries to fetch before Postgres starts, as the reference collects them: the
 * `shared_preload_libraries` setting, then the last `shared_preload_libraries='…'` line of
 * `cluster.postgresql_conf` (split at the first `='`), both split at `,`, `'` and spaces, without
 * `neon` and `databricks_auth`, keeping only names in library_index. Duplicates are kept (they
 * resolve to the same archive, which is fetched once).
 */
export function preloadLibraries(
  rspec: RemoteExtSpec,
  settingValue: string | null,
  postgresqlConf: string | null,
): string[] {
  const libs: string[] = [];
  if (settingValue !== null) libs.push(...splitLibs(settingValue));
  if (postgresqlConf !== null) {
    let line = "";
    for (const l of postgresqlConf.split("\n")) {
      if (l.startsWith("shared_preload_libraries")) line = l;
    }
    const value = line.split("='")[1];
    if (value !== undefined) libs.push(...splitLibs(value));
  }
  return libs.filter((l) => Object.hasOwn(rspec.library_index, l));
}
