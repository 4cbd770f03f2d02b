// Small pure formatters for the output cards and the history panel.

export interface StatsInput {
  tokens_in?: number | null;
  tokens_out?: number | null;
  cost_usd?: number | null;
  latency_ms?: number | null;
  ttft_ms?: number | null;
  estimated?: boolean;
}

const num = (v: number | null | undefined): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * `in 12 · out 34 tok · $0.000012 · 345 ms · TTFT 20 ms`: only what is known (the status is the card's
 * badge). An unknown cost is left out, never shown as $0.
 */
export function formatStats(s: StatsInput): string {
  const parts = [formatTokens(s.tokens_in, s.tokens_out, s.estimated), formatCost(s.cost_usd)];
  if (num(s.latency_ms)) parts.push(`${Math.round(s.latency_ms)} ms`);
  if (num(s.ttft_ms)) parts.push(`TTFT ${Math.round(s.ttft_ms)} ms`);
  return parts.filter(Boolean).join(" · ");
}

/** `in 12 · out 34 tok`, only the counts that are known; `~12`: counted in the kernel (the server sent no usage). */
export function formatTokens(tokensIn: number | null | undefined, tokensOut: number | null | undefined, estimated = false): string {
  const mark = estimated ? "~" : "";
  const parts: string[] = [];
  if (num(tokensIn)) parts.push(`in ${mark}${tokensIn}`);
  if (num(tokensOut)) parts.push(`out ${mark}${tokensOut}`);
  return parts.length ? `${parts.join(" · ")} tok` : "";
}

/** `$0.000123`; a known zero is `$0`; unknown (null) is "" so it is never mistaken for free. */
export function formatCost(usd: number | null | undefined): string {
  if (!num(usd)) return "";
  if (usd === 0) return "$0";
  if (usd < 0.000001) return "<$0.000001";
  return usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(6)}`;
}

/** A history timestamp: the time today, else the date and time. */
export function formatTime(iso: string, today: Date = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso ?? "";
  const pad = (n: number): string => String(n).padStart(2, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const sameDay =
    d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time.slice(0, 5)}`;
}

/** Pretty JSON for display; strings that hold JSON are parsed first. */
export function prettyJson(value: unknown): string {
  if (typeof value === "string") {
    const parsed = parseJson(value);
    if (parsed !== undefined) return JSON.stringify(parsed, null, 2);
    return value;
  }
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The value of a string that is entirely a JSON object or array, else `undefined`. */
export function parseJson(text: string): unknown {
  const t = text.trim();
  if (!(t.startsWith("{") && t.endsWith("}")) && !(t.startsWith("[") && t.endsWith("]"))) return undefined;
  try {
    return JSON.parse(t) as unknown;
  } catch {
    return undefined;
  }
}

/** `"a, b ,,c"` → `["a", "b", "c"]` */
export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function truncate(text: string, n: number): string {
  const t = (text ?? "").replace(/\s+/g, " ").trim();
  return t.length <= n ? t : `${t.slice(0, n - 1)}…`;
}

export function formatBytes(n: number | null | undefined): string {
  if (!num(n)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
