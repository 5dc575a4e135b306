// POST /extension_server/{*filename}?is_library=bool (internal): the neon extension
// asks for a remote extension (or the library of one) before Postgres loads it. Order as the
// reference: query rejection (400), no --remote-ext-base-url (412), no spec (412: the reference
// panics), no remote_extensions in the spec (409), not allowed or unknown (404), then the
// download. Success is 200 with an empty body. A failed download or install answers 500 with the
// error: the reference logs a failed rename and still answers 200, which tells Postgres the files
// are there when they are not.

import { Elysia } from "elysia";
import type { RemoteExtSpec } from "../../api/spec.ts";
import type { RemoteExtensions } from "../../extensions/remote.ts";
import { ExtensionNotFoundError, resolveExtension } from "../../extensions/spec.ts";
import { HttpError, RejectionError } from "../app.ts";
import { empty, error, operation } from "../route-doc.ts";

const POST_EXTENSION_SERVER_DOC = operation({
  operationId: "downloadExtension",
  summary: "Download and install a remote extension (called by the neon extension).",
  parameters: [
    {
      name: "filename",
      in: "path",
      required: true,
      description: "The extension or library file; may contain `/`.",
      schema: { type: "string" },
    },
    { name: "is_library", in: "query", required: false, schema: { type: "boolean" } },
  ],
  responses: {
    200: empty("Installed, or already installed (empty body)."),
    400: error("Bad `is_library`."),
    404: error("The extension or library is not allowed or unknown."),
    409: error("The spec has no remote_extensions."),
    412: error("No --remote-ext-base-url, or no spec yet."),
    500: error("The download or the installation failed."),
  },
});

export interface ExtensionServerRouteOptions {
  remote: RemoteExtensions;
  /** The current spec (a ParsedSpec fits), or null before one arrived. */
  pspec: () => { spec: { remote_extensions: RemoteExtSpec | null } } | null;
}

const PREFIX = "/extension_server/";

/** `is_library` as serde reads a bool from the query string; absent means false. */
export function isLibraryParam(url: string): boolean {
  const q = url.indexOf("?");
  if (q === -1) return false;
  const values = new URLSearchParams(url.slice(q + 1)).getAll("is_library");
  if (values.length > 1) {
    throw new RejectionError(
      400,
      "failed to deserialize query string: duplicate field `is_library`",
    );
  }
  if (values.length === 0) return false;
  if (values[0] === "true") return true;
  if (values[0] === "false") return false;
  throw new RejectionError(
    400,
    "failed to deserialize query string: is_library: provided string was not `true` or `false`",
  );
}

/** The wildcard part of the path, percent-decoded as axum's Path extractor does. */
function filenameOf(url: string): string {
  const path = new URL(url).pathname;
  const raw = path.slice(path.indexOf(PREFIX) + PREFIX.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new RejectionError(400, "invalid url encoding in path");
  }
}

export const extensionServerRoutes = (opts: ExtensionServerRouteOptions) =>
  new Elysia({ name: "routes:extension-server" }).post(
    "/extension_server/*",
    async ({ request }) => {
      const isLibrary = isLibraryParam(request.url);
      const filename = filenameOf(request.url);
      // axum's `{*filename}` does not match an empty remainder.
      if (filename === "") return new Response(null, { status: 404 });
      if (!opts.remote.configured) throw new HttpError(412, "remote storage is not configured");
      const pspec = opts.pspec();
      if (pspec === null) throw new HttpError(412, "compute is not configured: no spec");
      const rspec = pspec.spec.remote_extensions;
      if (rspec === null) {
        throw new HttpError(409, "information about remote extensions is unavailable");
      }
      let ext: string;
      try {
        ext = resolveExtension(rspec, filename, isLibrary);
      } catch (err) {
        if (err instanceof ExtensionNotFoundError) throw new HttpError(404, err.message);
        throw err;
      }
      try {
        await opts.remote.download(ext);
      } catch (err) {
        throw new HttpError(500, err instanceof Error ? err.message : String(err));
      }
      return new Response(null, { status: 200 });
    },
    { parse: "none", detail: POST_EXTENSION_SERVER_DOC },
  );
