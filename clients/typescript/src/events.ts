/**
 * `GET /v1/events` read as a sequence of {@link Received} messages: Server-Sent Events parsed
 * from the answer's body, and the stream opened again after the last event seen whenever it
 * drops, so a consumer gets each event the server still keeps once.
 */

import { ApiError } from "./errors.js";
import type { components } from "./schema.js";

/** An event: what happened to which session, when, through which service. */
export type Event = components["schemas"]["EventBody"];

/** One message of the stream. */
export type Received =
  | { kind: "event"; event: Event }
  /** The server had trimmed the events after `after` (up to `trimmedThrough`) before they
   * could be delivered: they are lost to this consumer. */
  | { kind: "lost"; after: string; trimmedThrough: string };

/** What {@link Client.events} streams. */
export interface EventOptions {
  /** Start after this event id (`"0"`: from the oldest the server keeps); absent: what happens next. */
  after?: string;
  /** Keep only these types (`created`, `refreshed`, `attributes_changed`, `regenerated`, `deleted`, `expired`). */
  types?: string[];
  /** Keep only this user's events. */
  userId?: string;
  /** Stops the stream; the iteration then ends without an error. */
  signal?: AbortSignal;
  /** A stream with no byte for this long is taken for dead and opened again: the server sends
   * a heartbeat every 15 s by default. Default 45 000 ms. */
  silenceMs?: number;
}

/** The longest wait before opening a dropped stream again. */
const MOST_BACKOFF_MS = 5_000;

/** Messages from streams `open` gives, each opened after the last event id seen. */
export async function* readEvents(
  options: EventOptions,
  open: (after: string | undefined, signal: AbortSignal) => Promise<Response>,
): AsyncGenerator<Received> {
  let after = options.after;
  let failures = 0;
  while (!options.signal?.aborted) {
    const connection = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, connection.signal]) : connection.signal;
    let silence: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(() => connection.abort(), options.silenceMs ?? 45_000);
    };
    try {
      heard();
      const response = await open(after, signal);
      failures = 0;
      for await (const message of messages(response, heard)) {
        if (message.event === "lost") {
          const lost = JSON.parse(message.data) as { after: string | number; trimmed_through: string | number };
          yield { kind: "lost", after: String(lost.after), trimmedThrough: String(lost.trimmed_through) };
        } else if (message.data !== "") {
          yield { kind: "event", event: JSON.parse(message.data) as Event };
        }
        if (message.id !== undefined) after = message.id;
      }
    } catch (error) {
      if (options.signal?.aborted) return;
      // A refusal (bad filter, no event log, a removed token) will not pass by waiting.
      if (error instanceof ApiError && !error.retryable) throw error;
      // A message that is not JSON: not the API, and reconnecting would read it again.
      if (error instanceof SyntaxError) throw error;
      failures += 1;
    } finally {
      clearTimeout(silence);
      connection.abort();
    }
    // The stream ended (the server stopped, or the connection broke): open it again.
    const wait = Math.min(MOST_BACKOFF_MS, 100 * 2 ** failures);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

interface Message {
  id?: string;
  event?: string;
  data: string;
}

/** The messages of a `text/event-stream` body, as the HTML standard parses them. */
async function* messages(response: Response, heard: () => void): AsyncGenerator<Message> {
  if (!response.body) return;
  let buffer = "";
  let message: Message = { data: "" };
  let hasData = false;
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    heard();
    buffer += decoder.decode(chunk, { stream: true });
    let end: RegExpExecArray | null;
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    while ((end = lineEnd.exec(buffer)) !== null) {
      // A lone `\r` at the very end may be the first half of `\r\n`: wait for more.
      if (end[0] === "\r" && end.index === buffer.length - 1) break;
      const line = buffer.slice(start, end.index);
      start = end.index + end[0].length;
      if (line === "") {
        if (hasData) yield message;
        message = { data: "" };
        hasData = false;
        continue;
      }
      if (line.startsWith(":")) continue; // a heartbeat
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") {
        message.data = hasData ? `${message.data}\n${value}` : value;
        hasData = true;
      } else if (field === "event") {
        message.event = value;
      } else if (field === "id" && !value.includes("\0")) {
        message.id = value;
      }
    }
    buffer = buffer.slice(start);
  }
}
