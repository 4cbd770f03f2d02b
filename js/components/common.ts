// Small helpers the components share.

import { parseJson } from "../lib/format";

/** A deep copy of a JSON value (drafts never share objects with the model's traits). */
export const clone = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));

/** Tool-call arguments as a value: JSON text parsed, anything else as it came. */
export function parseArguments(args: unknown): unknown {
  if (typeof args !== "string") return args;
  const parsed = parseJson(args);
  return parsed === undefined ? args : parsed;
}
