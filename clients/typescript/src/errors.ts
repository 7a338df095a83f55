/**
 * How a call fails: the server answered with an error ({@link ApiError}, carrying the stable
 * error code), or no usable answer came ({@link TransportError}). Both are
 * {@link SessangerError}s, so one `catch` can take either.
 */

import { type components, errorCodeValues } from "./schema.js";

/** The stable error codes of the server, and `unknown` for one this client does not know. */
export type ErrorCode = components["schemas"]["ErrorCode"] | "unknown";

const KNOWN_CODES: ReadonlySet<string> = new Set(errorCodeValues);

/** The error codes a retry of the same request may cure: the store or the server was busy. */
const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set(["store_unavailable", "request_timeout"]);

/** Every error a {@link Client} call throws. */
export abstract class SessangerError extends Error {
  /** Whether the same request may succeed later unchanged. */
  abstract get retryable(): boolean;
}

/** The server answered with an error status. */
export class ApiError extends SessangerError {
  override readonly name = "ApiError";

  constructor(
    /** The HTTP status. */
    readonly status: number,
    /** The server's stable error code: branch on this, never on the message. */
    readonly code: ErrorCode,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
  }

  /** The store was unreachable, or the server gave up on the request (503). */
  override get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }

  /** No such session (or service, or route). */
  get notFound(): boolean {
    return this.status === 404;
  }
}

/** No answer: the server could not be reached, the call timed out or was aborted, or the
 * answer was not the API's. */
export class TransportError extends SessangerError {
  override readonly name = "TransportError";

  constructor(
    message: string,
    /** Whether the client's own timeout ended the call (rather than the caller's signal). */
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Connection failures and timeouts may pass; an abort by the caller is final. */
  override get retryable(): boolean {
    return this.timedOut || !(this.cause instanceof DOMException && this.cause.name === "AbortError");
  }
}

/** The error of a non-2xx answer, from its JSON error body when it has one. */
export async function apiError(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const { code, message } = body.error ?? {};
    if (typeof code === "string" && typeof message === "string") {
      // A code this version does not know (a newer server's) is `unknown`, as in the Rust client.
      return new ApiError(response.status, KNOWN_CODES.has(code) ? (code as ErrorCode) : "unknown", message);
    }
  } catch {
    // Not JSON: a proxy's page, say. Reported with the status and the start of the text.
  }
  return new ApiError(response.status, response.status === 404 ? "not_found" : "unknown", text.slice(0, 200));
}
