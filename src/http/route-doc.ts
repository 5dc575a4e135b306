// Each route carries its own OpenAPI description: its summary, parameters, body schema and every
// status it answers, attached to the route where it is registered (Elysia's route `detail`).
// openapi.ts generates the served document from the routes the two servers register.
import type { TSchema } from "@sinclair/typebox";
import type { DocumentDecoration } from "elysia";
import { GenericApiError } from "../api/responses.ts";

type Json = Record<string, unknown>;

export interface ResponseDoc {
  description: string;
  /** A JSON body of this schema (content type application/json). */
  json?: TSchema;
  /** A body of another content type. */
  content?: { type: string; schema: Json };
}

/** One operation. Method, path, server and auth come from where the route is registered. */
export interface OperationDoc {
  operationId: string;
  summary: string;
  description?: string;
  parameters?: Json[];
  /** A required JSON body of this schema. */
  requestBody?: TSchema;
  responses: Record<number, ResponseDoc>;
}

const KEY = "x-compute-ctl-operation";

/** The route option `detail` carrying `doc`: `.get(path, handler, { detail: operation({…}) })`. */
export function operation(doc: OperationDoc): DocumentDecoration {
  return { [KEY]: doc } as DocumentDecoration;
}

/** The description a registered route carries, if any. */
export function operationOf(detail: unknown): OperationDoc | undefined {
  if (typeof detail !== "object" || detail === null) return undefined;
  return (detail as Record<string, OperationDoc | undefined>)[KEY];
}

export const error = (description: string): ResponseDoc => ({ description, json: GenericApiError });
export const wrongStatus = error(
  "The compute is not in a state that allows this (`invalid compute status: <status>`).",
);
/** The reference's Json extractor rejections, shared by every route with a body. */
export const bodyRejections: Record<number, ResponseDoc> = {
  400: error("The body is not valid JSON."),
  413: error("The body is larger than 2 MiB."),
  415: error("The content type is not application/json."),
  422: error("The body does not have the expected shape."),
};
export const empty = (description: string): ResponseDoc => ({ description });
