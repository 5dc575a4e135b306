// POST /extensions (internal): make an extension present at a version in a database.

import { Elysia } from "elysia";
import { parseJson } from "../../api/decode.ts";
import { ExtensionInstallRequest, ExtensionInstallResponse } from "../../api/requests.ts";
import type { ComputeState } from "../../compute/state.ts";
import { installExtension } from "../../postgres/install-extension.ts";
import { HttpError, jsonBody, jsonResponse, requireRunning } from "../app.ts";
import { bodyRejections, error, operation, wrongStatus } from "../route-doc.ts";

const POST_EXTENSIONS_DOC = operation({
  operationId: "installExtension",
  summary: "Install or update an extension in a database.",
  requestBody: ExtensionInstallRequest,
  responses: {
    201: { description: "Installed.", json: ExtensionInstallResponse },
    ...bodyRejections,
    412: wrongStatus,
    500: error("The installation failed."),
  },
});

export const extensionsRoutes = (opts: { connstr: URL; state: ComputeState }) =>
  new Elysia({ name: "routes:extensions" }).post(
    "/extensions",
    async ({ request }) => {
      const body = await jsonBody(request, (text) => parseJson(ExtensionInstallRequest, text));
      requireRunning(opts.state);
      let version: string;
      try {
        version = await installExtension(opts.connstr, body);
      } catch (err) {
        throw new HttpError(
          500,
          `failed to install extension: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      return jsonResponse(201, { extension: body.extension, version });
    },
    { parse: "none", detail: POST_EXTENSIONS_DOC },
  );
