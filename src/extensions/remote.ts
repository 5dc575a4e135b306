// Remote extensions: fetching `{ext}.tar.zst` from the
// extension gateway into the directories pg_config reports, the control files written at start,
// and the shared_preload_libraries preload.
//
// One event loop, so the reference's progress map with its 3-second "someone else is
// downloading" window becomes a map of promises: concurrent requests for an archive share one
// download, a finished one is never repeated, and a failed one is forgotten so the next request
// tries again (the reference left waiters polling a failed download with no end).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import { findSetting } from "../api/parsed-spec.ts";
import type { ComputeMetrics } from "../api/responses.ts";
import type { RemoteExtSpec } from "../api/spec.ts";
import { type Logger, log as rootLog } from "../log.ts";
import { httpStatusLabel, type Metrics } from "../metrics/registry.ts";
import { spawnChild } from "../util/spawn.ts";
import { readAllBounded } from "../util/streams.ts";
import { BUILD_TAG } from "../version.ts";
import { installPlan, planArchive } from "./archive.ts";
import { archivePath, goArch, isAllowed, preloadLibraries, resolveExtension } from "./spec.ts";

export interface PgDirs {
  /** `pg_config --sharedir` */
  sharedir: string;
  /** `pg_config --pkglibdir` */
  pkglibdir: string;
}

export interface RemoteExtensionsOptions {
  /** --remote-ext-base-url as the CLI normalised it (ends in one `/`); null when unset. */
  baseUrl: string | null;
  /** PgTools.pgConfig (the pg_config beside --pgbin). */
  pgConfig: string;
  /** The Postgres major version (run.ts has read it from `pg_config --version`). */
  pgMajor: number;
  /** For compute_ctl_remote_ext_requests_total. */
  metrics: Pick<Metrics, "remoteExtRequests">;
  /** ComputeState.timings: prepareAtStart fills the four extension fields of /metrics.json. */
  timings?: ComputeMetrics;
  /** Overrides pg_config's answer (tests). */
  dirs?: PgDirs;
  buildTag?: string;
  /** Go-style architecture name; defaults to this process's. */
  arch?: string;
  /** Whole-download deadline. The reference has none; Postgres's caller gives up after 60 s. */
  downloadTimeoutMs?: number;
  /** Cap on the download and on the decompressed tar size, against decompression bombs. */
  maxTarBytes?: number;
  /** Cap on the entries of one archive. */
  maxEntries?: number;
  logger?: Logger;
}

const PG_CONFIG_TIMEOUT_MS = 10_000;
const DEFAULT_DOWNLOAD_TIMEOUT_MS = 300_000;
const DEFAULT_MAX_TAR_BYTES = 1 << 30;

/** Runs `pg_config --sharedir --pkglibdir` once (it prints one line per flag, in order). */
export async function readPgDirs(pgConfig: string): Promise<PgDirs> {
  const proc = spawnChild([pgConfig, "--sharedir", "--pkglibdir"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: PG_CONFIG_TIMEOUT_MS,
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const lines = out.trim().split("\n");
  if (code !== 0 || lines.length !== 2 || !lines[0] || !lines[1]) {
    throw new Error(
      `${pgConfig} --sharedir --pkglibdir failed (exit ${code ?? "signal"}): ${err.trim() || out.trim()}`,
    );
  }
  return { sharedir: lines[0].trim(), pkglibdir: lines[1].trim() };
}

export class RemoteExtensions {
  readonly #opts: RemoteExtensionsOptions;
  readonly #log: Logger;
  #dirs: Promise<PgDirs> | null = null;
  /** Archive name -> the download in flight, or true once it completed. */
  readonly #progress = new Map<string, Promise<number> | true>();

  constructor(opts: RemoteExtensionsOptions) {
    this.#opts = opts;
    this.#log = opts.logger ?? rootLog;
    if (opts.dirs) this.#dirs = Promise.resolve(opts.dirs);
  }

  /** Whether --remote-ext-base-url was given. */
  get configured(): boolean {
    return this.#opts.baseUrl !== null;
  }

  /** The share and lib directories, from pg_config on first use (a failure is retried later). */
  dirs(): Promise<PgDirs> {
    if (!this.#dirs) {
      const p = readPgDirs(this.#opts.pgConfig);
      this.#dirs = p;
      p.catch(() => {
        if (this.#dirs === p) this.#dirs = null;
      });
    }
    return this.#dirs;
  }

  /** `{BUILD_TAG}/{arch}/v{PG}/extensions/{ext}.tar.zst` */
  async archivePath(ext: string): Promise<string> {
    return archivePath(
      this.#opts.buildTag ?? BUILD_TAG,
      this.#opts.arch ?? goArch(),
      this.#opts.pgMajor,
      ext,
    );
  }

  /**
   * Makes `ext` present locally: downloads and installs its archive unless that already
   * happened in this process. Resolves with the compressed bytes downloaded by THIS call (0 when
   * the archive was already installed or another call was already fetching it), as the
   * reference counts them. Rejects when the download, the archive or the install fails.
   */
  async download(ext: string): Promise<number> {
    const baseUrl = this.#opts.baseUrl;
    if (baseUrl === null) throw new Error("Remote extensions storage is not configured");
    const path = await this.archivePath(ext);
    const name = path.slice(path.lastIndexOf("/") + 1);
    const seen = this.#progress.get(name);
    if (seen === true) {
      this.#log.info("extension already downloaded, skipping re-download", { archive: name });
      return 0;
    }
    if (seen) {
      this.#log.info(`download ${name} already started, waiting for it`);
      await seen;
      return 0;
    }
    const job = this.#fetchAndInstall(ext, baseUrl, path, name);
    this.#progress.set(name, job);
    try {
      const size = await job;
      this.#progress.set(name, true);
      return size;
    } catch (err) {
      this.#progress.delete(name);
      throw err;
    }
  }

  async #fetchAndInstall(ext: string, baseUrl: string, path: string, name: string) {
    this.#log.info(`Download extension ${ext} from ${path}`);
    // Segments are encoded so that a name from the spec cannot add a query or fragment.
    const url = new URL(path.split("/").map(encodeURIComponent).join("/"), baseUrl);
    const body = await this.#fetchArchive(url, ext, name);
    this.#log.info(`Download size ${body.byteLength}`);
    const dirs = await this.dirs();
    const plan = await planArchive(
      body,
      { shareExtension: join(dirs.sharedir, "extension"), pkglibdir: dirs.pkglibdir },
      this.#opts.maxTarBytes ?? DEFAULT_MAX_TAR_BYTES,
      this.#opts.maxEntries,
    );
    await installPlan(plan);
    this.#log.info(`done installing extension ${ext}`, {
      files: plan.files.length,
      dirs: plan.dirs.length,
    });
    return body.byteLength;
  }

  /** One GET; every outcome counts in compute_ctl_remote_ext_requests_total. */
  async #fetchArchive(url: URL, ext: string, filename: string): Promise<Uint8Array> {
    const count = (status: string) =>
      this.#opts.metrics.remoteExtRequests.inc({ http_status: status, filename });
    this.#log.info(`Downloading extension file '${filename}' from uri ${url.href}`);
    const signal = AbortSignal.timeout(this.#opts.downloadTimeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS);
    let resp: Response;
    try {
      resp = await fetch(url, { signal, redirect: "manual" });
    } catch (err) {
      count("unknown");
      throw new Error(
        `error downloading extension ${ext}: could not perform remote extensions server request: ${errText(err)}`,
        { cause: err },
      );
    }
    const status = httpStatusLabel(resp.status);
    if (resp.status !== 200) {
      await resp.body?.cancel().catch(() => {});
      count(status);
      const why =
        resp.status === 503
          ? "remote extensions server is temporarily unavailable"
          : `unexpected remote extensions server response status code: ${status}`;
      throw new Error(`error downloading extension ${ext}: ${why}`);
    }
    try {
      const max = this.#opts.maxTarBytes ?? DEFAULT_MAX_TAR_BYTES;
      const body = resp.body
        ? await readAllBounded(
            resp.body,
            max,
            () => new Error(`the archive is larger than ${max} bytes`),
          )
        : new Uint8Array(0);
      count(status);
      return body;
    } catch (err) {
      // Still "200 OK", as the reference labels a body it failed to read.
      count(status);
      throw new Error(
        `error downloading extension ${ext}: could not read remote extensions server response: ${errText(err)}`,
        { cause: err },
      );
    }
  }

  /**
   * Writes each allowed extension's control_data files into `<sharedir>/extension/` unless a
   * file of that name exists (the local one wins, as in the reference). Names that are not plain
   * file names are skipped: they could point outside the directory.
   */
  async writeControlFiles(rspec: RemoteExtSpec): Promise<void> {
    const dir = join((await this.dirs()).sharedir, "extension");
    for (const [ext, data] of Object.entries(rspec.extension_data)) {
      if (!isAllowed(rspec, ext)) continue;
      for (const [file, content] of Object.entries(data.control_data)) {
        if (file === "" || file === "." || file === ".." || file.includes("/")) {
          this.#log.warn(`skipping control file with unsafe name '${file}' of extension ${ext}`);
          continue;
        }
        const path = join(dir, file);
        try {
          await writeFile(path, content, { flag: "wx" });
          this.#log.info(`wrote control file ${path}`);
        } catch (err) {
          if ((err as { code?: string }).code !== "EEXIST") {
            throw new Error(`failed to write control file ${path}: ${errText(err)}`, {
              cause: err,
            });
          }
          this.#log.warn(
            `control file ${path} exists both locally and remotely. ignoring the remote version.`,
          );
        }
      }
    }
  }

  /**
   * The pre-start task: control files, then the archives of the shared_preload_libraries that
   * library_index knows, fetched concurrently. A failed download is logged and start goes on; a
   * library mapped to an extension the spec does not allow, or a control file that cannot be
   * written, rejects (the reference fails the start there too). Fills the extension fields of
   * /metrics.json. `settingsSharedPreloadLibraries` defaults to the spec's cluster setting.
   */
  async prepareAtStart(
    pspec: Pick<ParsedSpec, "spec">,
    settingsSharedPreloadLibraries?: string | null,
  ): Promise<void> {
    const spec = pspec.spec;
    const rspec = spec.remote_extensions;
    if (!rspec) return;
    await this.writeControlFiles(rspec);

    const started = performance.now();
    let downloaded = 0;
    let largest = 0;
    let total = 0;
    if (this.configured) {
      const setting =
        settingsSharedPreloadLibraries !== undefined
          ? settingsSharedPreloadLibraries
          : findSetting(spec.cluster.settings, "shared_preload_libraries");
      const libs = preloadLibraries(rspec, setting, spec.cluster.postgresql_conf ?? null);
      this.#log.info(`Downloading to shared preload libraries: ${JSON.stringify(libs)}`);
      const exts = libs.map((lib) => resolveExtension(rspec, lib, true));
      const results = await Promise.allSettled(exts.map((ext) => this.download(ext)));
      for (const r of results) {
        if (r.status === "rejected") {
          this.#log.error(`Failed to download extension: ${errText(r.reason)}`);
          continue;
        }
        downloaded += 1;
        largest = Math.max(largest, r.value);
        total += r.value;
      }
    }
    const ms = Math.floor(performance.now() - started);
    const t = this.#opts.timings;
    if (t) {
      t.load_ext_ms = ms;
      t.num_ext_downloaded = downloaded;
      t.largest_ext_size = largest;
      t.total_ext_download_size = total;
    }
    this.#log.info(`Loading shared_preload_libraries took ${ms}ms`, {
      num_ext_downloaded: downloaded,
      largest_ext_size: largest,
      total_ext_download_size: total,
    });
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
