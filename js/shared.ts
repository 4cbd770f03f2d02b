// Per-model state every view of a Playground shares: the stream (folded by lib/reducer.ts from the
// kernel's custom messages), the last notice, and the views' listeners and flushers.

import type { Notice } from "./components/toolbar";
import {
  applyEvents,
  applySnapshot,
  emptyState,
  markIdle,
  runFinished,
  runStarted,
  type StreamState,
} from "./lib/reducer";
import type { AnyModel, KernelMsg, PlaygroundModel } from "./lib/types";

export type SharedEvent = "stream" | "started" | "finished" | "notice";

export interface Shared {
  stream: StreamState;
  notice: Notice;
  /** Views redraw on these. */
  listeners: Set<(what: SharedEvent) => void>;
  /** Each view's "write my pending edits now"; every command runs them all first. */
  flushers: Set<() => void>;
  detach: () => void;
}

/*
 * anywidget hands `initialize` and each `render` a different proxy of the same model, so a WeakMap on
 * the proxy cannot carry state from one to the other. The proxies do return the same attribute
 * objects, so `initialize` registers its state under every object-valued trait it can see (re-done
 * on every change) and `render` looks it up through any of them.
 */
const KEY_TRAITS = [
  "layout", "messages", "targets", "outputs", "previous", "history", "models", "variables",
  "variable_names", "base_messages", "missing", "tool_names",
] as const;
const registry = new WeakMap<object, Shared>();

function traitObjects(model: PlaygroundModel): object[] {
  const loose = model as unknown as AnyModel<Record<string, unknown>>;
  const out: object[] = [];
  for (const key of KEY_TRAITS) {
    let value: unknown;
    try {
      value = loose.get(key);
    } catch {
      continue;
    }
    if (value !== null && typeof value === "object") out.push(value);
  }
  return out;
}

/** The state `initialize` made for this model, found through any of the proxy's trait objects. */
export function lookupShared(model: PlaygroundModel): Shared | undefined {
  for (const obj of traitObjects(model)) {
    const found = registry.get(obj);
    if (found) return found;
  }
  return undefined;
}

/** Fold the model's custom messages into a new shared state; `detach` stops listening. */
export function createShared(model: PlaygroundModel): Shared {
  const shared: Shared = {
    stream: emptyState(),
    notice: null,
    listeners: new Set(),
    flushers: new Set(),
    detach: () => undefined,
  };
  const notify = (what: SharedEvent): void => {
    for (const fn of [...shared.listeners]) {
      try {
        fn(what);
      } catch (err) {
        console.error("nbplayground: view update failed", err);
      }
    }
  };
  const onMessage = (msg: KernelMsg): void => {
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "run_started":
        runStarted(shared.stream, msg);
        shared.notice = null;
        notify("started");
        break;
      case "events":
        applyEvents(shared.stream, msg.events ?? []);
        notify("stream");
        break;
      case "snapshot":
        applySnapshot(shared.stream, msg);
        notify("started");
        break;
      case "run_finished":
        runFinished(shared.stream, msg);
        notify("finished");
        break;
      case "saved":
        shared.notice = { text: `Saved ${msg.ref}`, kind: "info" };
        notify("notice");
        break;
      case "error":
        shared.notice = { text: msg.message, kind: "error" };
        notify("notice");
        break;
      default:
        break;
    }
  };
  const onStatus = (): void => {
    if (model.get("status") === "idle" && shared.stream.running) {
      markIdle(shared.stream);
      notify("finished");
    }
  };
  const register = (): void => {
    for (const obj of traitObjects(model)) registry.set(obj, shared);
  };
  model.on("msg:custom", onMessage);
  model.on("change:status", onStatus);
  model.on("change", register);
  register();
  shared.detach = () => {
    model.off("msg:custom", onMessage);
    model.off("change:status", onStatus);
    model.off("change", register);
    shared.listeners.clear();
    shared.flushers.clear();
  };
  return shared;
}
