// Shapes of the Playground widget's traits and messages (see docs/widget-protocol.md).

export type Role = "system" | "user" | "assistant" | "tool";
export const ROLES: readonly Role[] = ["system", "user", "assistant", "tool"];

export interface ToolCallSpec {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface Message {
  role: Role;
  content: string;
  tool_call_id?: string;
  tool_calls?: ToolCallSpec[];
  name?: string;
}

export interface TargetParams {
  temperature?: number | null;
  max_tokens?: number | null;
  top_p?: number | null;
  stop?: string[] | string | null;
  seed?: number | null;
  [key: string]: unknown;
}

export interface Target {
  model: string;
  params: TargetParams;
  response_format: string | null;
  tools: boolean;
}

export interface ModelChoice {
  model: string;
  provider: string;
  key_status: "set" | "missing" | "not needed" | string;
}

/** ToolCall.to_dict() */
export interface ToolCallInfo {
  id: string;
  name: string;
  arguments: unknown;
  result?: unknown;
  error?: string | null;
}

/** Media.to_dict(include_data) */
export interface MediaInfo {
  mime: string;
  size?: number;
  params?: Record<string, unknown> | null;
  revised_prompt?: string | null;
  path?: string | null;
  data_b64?: string;
}

export type ResultStatus = "ok" | "error" | "stopped";

/** RunResult.to_dict() (the widget drops `messages`). */
export interface RunResult {
  id: string;
  model: string;
  status: ResultStatus;
  text: string;
  error?: string | null;
  error_type?: string | null;
  data?: unknown;
  tool_calls?: ToolCallInfo[];
  media?: MediaInfo[];
  tokens_in?: number | null;
  tokens_out?: number | null;
  cost_usd?: number | null;
  latency_ms?: number | null;
  ttft_ms?: number | null;
  finish_reason?: string | null;
  reasoning?: string | null;
  tokens_estimated?: boolean;
  provider?: string | null;
  kind?: string;
  target_index?: number;
  [key: string]: unknown;
}

export type EventType = "start" | "delta" | "tool_call" | "tool_result" | "usage" | "done" | "error";

/** Event.to_dict() */
export interface StreamEvent {
  type: EventType;
  target: number;
  run_id: string;
  text?: string;
  tool_call?: ToolCallInfo;
  usage?: { tokens_in?: number | null; tokens_out?: number | null };
  result?: RunResult;
  error?: string | null;
}

export interface HistoryItem {
  id: string;
  group_id?: string | null;
  created_at: string;
  model: string;
  status: string;
  text: string;
  tokens_in?: number | null;
  tokens_out?: number | null;
  cost_usd?: number | null;
  latency_ms?: number | null;
}

export interface HistoryPage {
  scope: "widget" | "all";
  offset: number;
  total: number;
  items: HistoryItem[];
}

export type PlaygroundStatus = "idle" | "running" | "stopping";

export interface Traits {
  messages: Message[];
  base_messages: Message[];
  variables: Record<string, string>;
  variable_names: string[];
  missing: string[];
  targets: Target[];
  models: ModelChoice[];
  tool_names: string[];
  tool_mode: "auto" | "manual";
  status: PlaygroundStatus;
  error: string;
  outputs: (RunResult | null)[];
  previous: (string | null)[];
  history: HistoryPage;
  prompt_ref: string;
  prompt_labels: string[];
}

// -- kernel → front end ------------------------------------------------------------------------------
export interface RunStartedMsg {
  type: "run_started";
  run: number;
  targets: { index: number; model: string; run_id: string }[];
}
export interface EventsMsg {
  type: "events";
  run: number;
  events: StreamEvent[];
}
export interface SnapshotMsg {
  type: "snapshot";
  run: number;
  texts: string[];
}
export interface RunFinishedMsg {
  type: "run_finished";
  run: number;
}
export interface SavedMsg {
  type: "saved";
  ref: string;
}
export interface ErrorMsg {
  type: "error";
  message: string;
}
export type KernelMsg = RunStartedMsg | EventsMsg | SnapshotMsg | RunFinishedMsg | SavedMsg | ErrorMsg;

// -- front end → kernel ------------------------------------------------------------------------------
export type Command =
  | { type: "ready" }
  | { type: "run" }
  | { type: "clear_and_run" }
  | { type: "stop" }
  | { type: "history"; scope: "widget" | "all"; offset: number }
  | { type: "restore"; run_id: string }
  | { type: "save_version"; name: string; labels: string[]; conversation: boolean }
  | { type: "load_version"; ref: string };

/** The subset of anywidget's AnyModel this widget uses. */
export interface AnyModel<T> {
  get<K extends keyof T>(key: K): T[K];
  set<K extends keyof T>(key: K, value: T[K]): void;
  save_changes(): void;
  on(name: string, callback: (...args: any[]) => void): void;
  off(name?: string | null, callback?: ((...args: any[]) => void) | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

export type PlaygroundModel = AnyModel<Traits>;
