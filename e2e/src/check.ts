// Small assertions that stop the check with a message naming what differed.

import { inspect } from "node:util";

export class CheckFailed extends Error {
  override name = "CheckFailed";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message);
}

export function eq<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) {
    throw new CheckFailed(`${what}: expected ${inspect(expected)}, got ${inspect(actual)}`);
  }
}

/** What every call of the generated client answers. */
interface Answer<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

function describe(r: Answer<unknown, unknown>): string {
  const body = r.error !== undefined ? r.error : r.data;
  return `${r.response.status} ${inspect(body, { depth: 4, breakLength: Infinity })}`;
}

/** The body of a successful answer with exactly `status`. */
export function expectData<D, E>(r: Answer<D, E>, status: number, what: string): D {
  if (r.response.status !== status || r.data === undefined) {
    throw new CheckFailed(`${what}: expected ${status} with a body, got ${describe(r)}`);
  }
  return r.data;
}

/** A successful answer without a body (204). */
export function expectEmpty<D, E>(r: Answer<D, E>, status: number, what: string): void {
  if (r.response.status !== status || r.error !== undefined) {
    throw new CheckFailed(`${what}: expected ${status}, got ${describe(r)}`);
  }
}

/** A problem document with `status` and `code`. */
export function expectProblem<D, E extends { code: string; status: number }>(
  r: Answer<D, E>,
  status: number,
  code: E["code"],
  what: string,
): E {
  const contentType = r.response.headers.get("content-type") ?? "";
  if (
    r.response.status !== status ||
    r.error === undefined ||
    r.error.code !== code ||
    r.error.status !== status ||
    !contentType.startsWith("application/problem+json")
  ) {
    throw new CheckFailed(`${what}: expected ${status} ${code} (problem+json), got ${contentType} ${describe(r)}`);
  }
  return r.error;
}

/** Numbered progress lines; `count` is what the summary reports. */
export class Steps {
  count = 0;
  ok(description: string): void {
    this.count += 1;
    console.log(`ok ${this.count} - ${description}`);
  }
}
