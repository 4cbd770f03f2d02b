// Generated from src/nbplayground/widgets/protocol.py by `python -m nbplayground.widgets.protocol --ts`:
// do not edit (tests/test_protocol.py fails when this file and the schema differ).

export type Role = "system" | "user" | "assistant" | "tool" | "developer";
export type EventType = "start" | "delta" | "tool_call" | "tool_result" | "usage" | "retry" | "done" | "error";
export type ResultStatus = "ok" | "error" | "stopped";
export type ResultKind = "chat" | "image" | "speech" | "transcription";
export type TargetKind = "auto" | "chat" | "image" | "speech" | "transcription";
export type ToolMode = "auto" | "manual";
export type PlaygroundStatus = "idle" | "running" | "stopping";
export type HistoryScope = "widget" | "all";
export type KeyStatus = "set" | "missing" | "not needed";

export const MAX_TARGETS = 4;
export const ROLES: readonly Role[] = ["system", "user", "assistant", "tool", "developer"];
export const EVENT_TYPES: readonly EventType[] = ["start", "delta", "tool_call", "tool_result", "usage", "retry", "done", "error"];

/** More answer text (consecutive deltas of a target may arrive merged). */
export interface DeltaEvent {
  type: "delta";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  text: string;
}

/** The target ended (always the last event of a target). */
export interface DoneEvent {
  type: "done";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  result: RunResult;
}

/** The target failed; a `done` with the same result follows. */
export interface ErrorEvent {
  type: "error";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  error: string;
  result?: RunResult;
}

/** A command failed (the message is also in the `error` trait). */
export interface ErrorMsg {
  type: "error";
  message: string;
}

/** A batch of stream events (sent every ~50 ms while streaming). */
export interface EventsMsg {
  type: "events";
  run: number;
  events: StreamEvent[];
}

/** The function an assistant message calls. */
export interface FunctionCall {
  name: string;
  /** JSON text, as the model wrote it. */
  arguments: string;
}

/** Refresh the `history` trait. */
export interface HistoryCommand {
  type: "history";
  scope: HistoryScope;
  offset: number;
}

/** Load a registry version into the editor. */
export interface LoadVersionCommand {
  type: "load_version";
  ref: string;
}

/** This view can receive stream messages. */
export interface ReadyCommand {
  type: "ready";
}

/** Load a stored run (and its compare group) into the editor. */
export interface RestoreCommand {
  type: "restore";
  run_id: string;
}

/** An attempt failed and another begins after `wait`; the current tool round's partial text is void. */
export interface RetryEvent {
  type: "retry";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  /** The attempt about to start. */
  attempt: number;
  /** The error's class name, e.g. RateLimitError. */
  reason: string;
  /** Seconds before the attempt. */
  wait: number;
}

/** Run `messages` on every target (`clear_and_run`: drop the conversation first). */
export interface RunCommand {
  type: "run" | "clear_and_run";
}

/** Every target ended; the `outputs`, `messages` and `history` traits are already updated. */
export interface RunFinishedMsg {
  type: "run_finished";
  run: number;
}

/** A run began. */
export interface RunStartedMsg {
  type: "run_started";
  /** The kernel's request number. */
  run: number;
  targets: RunTarget[];
}

/** A target of a run that began. */
export interface RunTarget {
  index: number;
  model: string;
  run_id: string;
}

/** Save the prompt (or the whole conversation) to the registry. */
export interface SaveVersionCommand {
  type: "save_version";
  name: string;
  labels: string[];
  conversation: boolean;
}

/** A `save_version` command succeeded. */
export interface SavedMsg {
  type: "saved";
  ref: string;
}

/** The answer to `ready` during a run: each target's text so far. */
export interface SnapshotMsg {
  type: "snapshot";
  run: number;
  texts: string[];
}

/** A target's run began. */
export interface StartEvent {
  type: "start";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  model: string;
}

/** Stop every target. */
export interface StopCommand {
  type: "stop";
}

/** Sampling parameters of a target; other keys go to the provider as they are. */
export interface TargetParams {
  temperature?: number | null;
  max_tokens?: number | null;
  top_p?: number | null;
  stop?: string[] | string | null;
  seed?: number | null;
  [key: string]: unknown;
}

/** Token counts a provider reported for one tool round. */
export interface TokenUsage {
  tokens_in: number | null;
  tokens_out: number | null;
}

/** A tool call inside an assistant message (OpenAI chat format). */
export interface ToolCallSpec {
  id: string;
  type: "function";
  function: FunctionCall;
}

/** The model asked for a tool (`tool_call`), or the tool answered (`tool_result`). */
export interface ToolEvent {
  type: "tool_call" | "tool_result";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  tool_call: ToolCallInfo;
}

/** Token usage of the current tool round. */
export interface UsageEvent {
  type: "usage";
  /** The target's index (0 for a single run). */
  target: number;
  run_id: string;
  usage: TokenUsage;
}

/** One message of the editor. */
export interface Message {
  role: Role;
  content: string;
  /** A tool message: the call it answers. */
  tool_call_id?: string;
  /** An assistant message's calls. */
  tool_calls?: ToolCallSpec[];
  name?: string;
}

/** One model of a run (a compare has up to `MAX_TARGETS`); the kernel fills in what is left out. */
export interface Target {
  /** `provider/model` or an alias; empty while being typed. */
  model: string;
  params: TargetParams;
  /** JSON Schema text; null: free text. */
  response_format: string | null;
  /** Pass the playground's tools to this target. */
  tools: boolean;
  kind: TargetKind;
}

/** A model offered by the picker, with its key status (never the key). */
export interface ModelChoice {
  model: string;
  provider: string;
  key_status: KeyStatus;
}

/** `ToolCall.to_dict()`. */
export interface ToolCallInfo {
  id: string;
  name: string;
  arguments: string;
  /** What the tool returned (auto mode), as JSON. */
  result: unknown;
  error: string | null;
}

/** `Media.to_dict()`; `data_b64` only when the bytes travel with it. */
export interface MediaInfo {
  mime: string;
  size: number;
  params: Record<string, unknown>;
  revised_prompt: string | null;
  path: string | null;
  data_b64?: string;
}

/** `RunResult.to_dict()`; the widget leaves out `messages` (the editor shows them). */
export interface RunResult {
  id: string;
  model: string;
  status: ResultStatus;
  text: string;
  error: string | null;
  error_type: string | null;
  error_status: number | null;
  error_detail: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
  tokens_estimated: boolean;
  cost_usd: number | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  finish_reason: string | null;
  reasoning: string | null;
  provider: string | null;
  kind: ResultKind;
  surface: string;
  prompt_ref: string | null;
  thread_id: string | null;
  parent_id: string | null;
  group_id: string | null;
  target_index: number;
  attempts: number;
  row_key: string | null;
  /** ISO 8601, UTC. */
  created_at: string;
  /** The parsed structured output, or null. */
  data: unknown;
  tool_calls: ToolCallInfo[];
  media: MediaInfo[];
  params: Record<string, unknown>;
  variables: Record<string, unknown>;
  template: Record<string, unknown> | null;
  /** The messages sent (the widget leaves them out). */
  messages?: Record<string, unknown>[];
}

export type StreamEvent = StartEvent | DeltaEvent | ToolEvent | UsageEvent | RetryEvent | DoneEvent | ErrorEvent;

/** One stored run in the history panel (its text cut to 200 characters). */
export interface HistoryItem {
  id: string;
  group_id: string | null;
  created_at: string;
  model: string;
  status: ResultStatus;
  text: string;
  tokens_in: number | null;
  tokens_out: number | null;
  cost_usd: number | null;
  latency_ms: number | null;
}

/** A page of the history panel. */
export interface HistoryPage {
  scope: HistoryScope;
  offset: number;
  total: number;
  items: HistoryItem[];
}

/** The widget's synced state; a view re-rendered later, or a saved notebook, needs nothing else. */
export interface Traits {
  messages: Message[];
  /** The editor's messages when the conversation began. */
  base_messages: Message[];
  /** Values as typed; text that parses as JSON is used as JSON. */
  variables: Record<string, string>;
  /** Root names of the messages' placeholders, in order. */
  variable_names: string[];
  missing: string[];
  targets: Target[];
  models: ModelChoice[];
  tool_names: string[];
  tool_mode: ToolMode;
  status: PlaygroundStatus;
  /** The last validation error; empty when none. */
  error: string;
  /** Per target, the last finished run. */
  outputs: (RunResult | null)[];
  /** Per target, the text of the run before (for the diff). */
  previous: (string | null)[];
  history: HistoryPage;
  prompt_ref: string;
  prompt_labels: string[];
}

export type KernelMsg = RunStartedMsg | EventsMsg | SnapshotMsg | RunFinishedMsg | SavedMsg | ErrorMsg;

export type Command = ReadyCommand | RunCommand | StopCommand | HistoryCommand | RestoreCommand | SaveVersionCommand | LoadVersionCommand;
