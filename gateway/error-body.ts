import { asJson, ERRORS, INVALID_TOKEN_REASONS, type ErrorCode } from '../core/errors.js';
import type { Denial } from './context.js';

const MESSAGES_JSON: Readonly<Record<ErrorCode, string>> = asJson(
  Object.fromEntries(Object.entries(ERRORS).map(([code, def]) => [code, def.message])) as Record<ErrorCode, string>,
);
const REASONS_JSON = asJson(INVALID_TOKEN_REASONS);

/** A refusal's message: its own, else its reason's, else its code's (core/errors.ts). */
export function messageOf(denial: Denial): string {
  return denial.message ?? (denial.reason !== undefined ? INVALID_TOKEN_REASONS[denial.reason] : ERRORS[denial.code].message);
}

/**
 * A refusal's JSON body (core/errors.ts ErrorBody) as text, built once per denial: everything
 * but the request id is the denial's own, so the text before and after the id is kept for
 * every frozen denial (the stages build those once, or memoise them), and a refusal costs two
 * concatenations. The request id needs no escaping: it is a UUID or matches REQUEST_ID
 * (pipeline.ts); nor do the code and the reason, identifiers of the catalogue.
 */
export class ErrorBodies {
  readonly #docUrlsJson: Readonly<Record<ErrorCode, string>>;
  readonly #parts = new WeakMap<Denial, readonly [string, string]>();

  constructor(docUrls: Readonly<Record<ErrorCode, string>>) {
    this.#docUrlsJson = asJson(docUrls);
  }

  render(denial: Denial, requestId: string): string {
    let parts = this.#parts.get(denial);
    if (parts === undefined) {
      parts = this.#build(denial);
      if (Object.isFrozen(denial)) this.#parts.set(denial, parts);
    }
    return parts[0] + requestId + parts[1];
  }

  #build(denial: Denial): readonly [string, string] {
    const { code, reason } = denial;
    const message = denial.message !== undefined ? JSON.stringify(denial.message) : reason !== undefined ? REASONS_JSON[reason] : MESSAGES_JSON[code];
    const head = reason === undefined ? `{"error":"${code}"` : `{"error":"${code}","reason":"${reason}"`;
    const extra = denial.extra === undefined ? '{}' : JSON.stringify(denial.extra);
    return [
      `${head},"message":${message},"doc_url":${this.#docUrlsJson[code]},"request_id":"`,
      extra.length > 2 ? `",${extra.slice(1)}` : '"}',
    ];
  }
}

/**
 * Denials that differ by a small number (seconds to wait), built once per value and frozen so
 * ErrorBodies keeps their text; bounded, as the values a window allows are.
 */
export class DenialsByNumber {
  readonly #made = new Map<number, Denial>();
  readonly #make: (n: number) => Denial;

  constructor(make: (n: number) => Denial) {
    this.#make = make;
  }

  get(n: number): Denial {
    let d = this.#made.get(n);
    if (d === undefined) {
      if (this.#made.size >= 4_096) this.#made.clear();
      d = Object.freeze(this.#make(n));
      this.#made.set(n, d);
    }
    return d;
  }
}
