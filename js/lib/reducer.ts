// The streaming state of a run, per target, built from the kernel's messages: `run_started`,
// `events` (Event.to_dict() batches), `snapshot` and `run_finished`. Pure: no DOM, no model.
// The same reducer serves any consumer of the Event vocabulary (the widget comm, the SSE API).

import type {
  ResultStatus,
  RunFinishedMsg,
  RunResult,
  RunStartedMsg,
  SnapshotMsg,
  StreamEvent,
  ToolCallInfo,
} from "./types";

export type TargetStatus = "idle" | "streaming" | ResultStatus;

export interface TargetStream {
  index: number;
  run_id: string;
  model: string;
  /** The answer so far (all tool rounds). */
  text: string;
  status: TargetStatus;
  toolCalls: ToolCallInfo[];
  tokens_in: number | null;
  tokens_out: number | null;
  error: string | null;
  /** The final RunResult, from the `done` event. */
  result: RunResult | null;
  /** A `start` event was seen. */
  started: boolean;
  /** The attempt being streamed (a `retry` event raises it), and why the last retry happened. */
  attempt: number;
  retryReason: string;
  /** Length of `text` when the current tool round began: a retry restarts the round from here. */
  roundStart: number;
  /** Usage is reported per tool round: the finished rounds' sum, and the current round's last report. */
  priorIn: number | null;
  priorOut: number | null;
  roundIn: number | null;
  roundOut: number | null;
  /** Client clock (ms) of the start and of the first text, for a live TTFT before the result lands. */
  startedAt: number | null;
  firstTextAt: number | null;
}

export interface StreamState {
  /** The kernel's request id of the run being followed (`null` before any). */
  run: number | null;
  /** True from `run_started` (or a `snapshot`) until `run_finished`. */
  running: boolean;
  targets: TargetStream[];
  /** Bumped on every change, so views can tell whether to redraw. */
  version: number;
}

export function emptyState(): StreamState {
  return { run: null, running: false, targets: [], version: 0 };
}

export function newTarget(index: number, model = "", run_id = ""): TargetStream {
  return {
    index, run_id, model, text: "", status: "idle", toolCalls: [], tokens_in: null, tokens_out: null,
    error: null, result: null, started: false, attempt: 1, retryReason: "", roundStart: 0, priorIn: null, priorOut: null, roundIn: null, roundOut: null,
    startedAt: null, firstTextAt: null,
  };
}

function ensureTarget(state: StreamState, index: number): TargetStream {
  while (state.targets.length <= index) state.targets.push(newTarget(state.targets.length));
  return state.targets[index]!;
}

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** `run_started`: one streaming slot per target; earlier text is dropped. */
export function runStarted(state: StreamState, msg: RunStartedMsg, clock: number = now()): StreamState {
  state.run = msg.run;
  state.running = true;
  state.targets = [];
  for (const t of msg.targets ?? []) {
    const slot = newTarget(t.index, t.model, t.run_id);
    slot.status = "streaming";
    slot.startedAt = clock;
    state.targets[t.index] = slot;
  }
  for (let i = 0; i < state.targets.length; i++) state.targets[i] ??= newTarget(i);
  state.version++;
  return state;
}

function upsertCall(list: ToolCallInfo[], call: ToolCallInfo): void {
  const i = list.findIndex((c) => c.id === call.id);
  if (i < 0) list.push({ ...call });
  else list[i] = { ...list[i], ...call };
}

const add = (a: number | null, b: number | null | undefined): number | null =>
  a === null && (b === null || b === undefined) ? null : (a ?? 0) + (b ?? 0);

function finalStatus(status: TargetStatus): boolean {
  return status === "ok" || status === "error" || status === "stopped";
}

/** Apply one `Event.to_dict()`. */
export function applyEvent(state: StreamState, ev: StreamEvent, clock: number = now()): StreamState {
  if (!ev || typeof ev.target !== "number") return state;
  let t = ensureTarget(state, ev.target);
  if (ev.run_id && t.run_id && t.run_id !== ev.run_id) {
    // a new run of this target that we did not see start: start over
    const fresh = newTarget(ev.target, t.model, ev.run_id);
    state.targets[ev.target] = fresh;
    t = fresh;
  }
  if (ev.run_id && !t.run_id) t.run_id = ev.run_id;
  switch (ev.type) {
    case "start":
      if (!t.started) {
        t.started = true;
        if (!t.text || t.status !== "streaming") t.text = ""; // (a snapshot's text is kept)
        t.startedAt ??= clock;
      }
      if (ev.model) t.model = ev.model;
      if (!finalStatus(t.status)) t.status = "streaming";
      break;
    case "retry":
      t.text = t.text.slice(0, t.roundStart); // the round's partial text is void; finished rounds stay
      t.attempt = ev.attempt ?? t.attempt + 1;
      t.retryReason = ev.reason ?? "";
      t.roundIn = t.roundOut = null;
      if (!finalStatus(t.status)) t.status = "streaming";
      break;
    case "delta":
      if (ev.text) {
        t.text += ev.text;
        t.firstTextAt ??= clock;
      }
      if (!finalStatus(t.status)) t.status = "streaming";
      break;
    case "tool_call":
      if (ev.tool_call) upsertCall(t.toolCalls, ev.tool_call);
      t.roundStart = t.text.length;
      // the round ended with tool calls: its usage is final (several calls of one round fold once)
      t.priorIn = add(t.priorIn, t.roundIn);
      t.priorOut = add(t.priorOut, t.roundOut);
      t.roundIn = t.roundOut = null;
      break;
    case "tool_result":
      if (ev.tool_call) upsertCall(t.toolCalls, ev.tool_call);
      break;
    case "usage":
      if (ev.usage) {
        t.roundIn = ev.usage.tokens_in ?? null;
        t.roundOut = ev.usage.tokens_out ?? null;
        t.tokens_in = add(t.priorIn, t.roundIn);
        t.tokens_out = add(t.priorOut, t.roundOut);
      }
      break;
    case "error":
      t.error = ev.error ?? ev.result?.error ?? "error";
      t.status = "error";
      if (ev.result) applyResult(t, ev.result);
      break;
    case "done":
      if (ev.result) applyResult(t, ev.result);
      else if (!finalStatus(t.status)) t.status = "ok";
      break;
    default:
      return state;
  }
  state.version++;
  return state;
}

function applyResult(t: TargetStream, r: RunResult): void {
  t.result = r;
  t.status = r.status ?? "ok";
  if (typeof r.text === "string" && (r.text || r.status === "ok")) t.text = r.text;
  if (r.model) t.model = r.model;
  if (r.tokens_in !== undefined) t.tokens_in = r.tokens_in ?? t.tokens_in;
  if (r.tokens_out !== undefined) t.tokens_out = r.tokens_out ?? t.tokens_out;
  if (r.error) t.error = r.error;
  for (const c of r.tool_calls ?? []) upsertCall(t.toolCalls, c);
}

/** An `events` message: a batch of events (consecutive deltas of a target already merged). */
export function applyEvents(state: StreamState, events: readonly StreamEvent[], clock: number = now()): StreamState {
  for (const ev of events ?? []) applyEvent(state, ev, clock);
  return state;
}

/**
 * `snapshot` (the kernel's answer to `ready` mid-run): the text so far, per target. Ignored when this
 * model already follows that run (another view of it asked), since its text is already complete.
 */
export function applySnapshot(state: StreamState, msg: SnapshotMsg, clock: number = now()): StreamState {
  if (state.run === msg.run && state.targets.length > 0) return state;
  state.run = msg.run;
  state.running = true;
  state.targets = (msg.texts ?? []).map((text, i) => {
    const t = newTarget(i);
    t.text = text ?? "";
    t.status = "streaming";
    t.started = true;
    t.startedAt = clock;
    return t;
  });
  state.version++;
  return state;
}

/** `run_finished`: every target ended (the `outputs` trait now holds the results). */
export function runFinished(state: StreamState, msg?: RunFinishedMsg): StreamState {
  if (msg && state.run !== null && msg.run !== state.run) return state;
  state.running = false;
  for (const t of state.targets) if (t.status === "streaming") t.status = t.result?.status ?? "ok";
  state.version++;
  return state;
}

/** The run ended without a `run_finished` (the `status` trait went back to idle). */
export function markIdle(state: StreamState): StreamState {
  if (!state.running) return state;
  return runFinished(state);
}
