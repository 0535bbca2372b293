import type { IncomingMessage } from "node:http";
import { RegistryError } from "../registry/registry-error.js";
import { HttpError } from "./http-errors.js";

/** Default cap on a request body: a registration with 64 full metadata entries fits well within it. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/**
 * Reads a JSON request body of at most `maxBytes`. A declared length over the
 * cap is refused before reading; a body that grows past it is cut off. Both
 * answer 413; a body that is not JSON answers 400; one whose connection
 * closes before it is whole is the client's cancellation (499).
 */
export async function readJsonBody(req: IncomingMessage, maxBytes = DEFAULT_MAX_BODY_BYTES): Promise<unknown> {
  const tooLarge = (): HttpError => new HttpError(413, "RESOURCE_EXHAUSTED", `request body must be at most ${maxBytes} bytes`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // node:http ends the body with an error ("aborted") when the connection closes before it is
    // whole: the client went away (or was cut off for being too slow), nothing failed here.
    throw new RegistryError("cancelled", "the client went away before sending the whole request body", { cause: err });
  }
  const text = Buffer.concat(chunks, size).toString("utf8");
  if (text.trim() === "") throw new HttpError(400, "INVALID_ARGUMENT", "request body must be a JSON object");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, "INVALID_ARGUMENT", "request body is not valid JSON");
  }
}
