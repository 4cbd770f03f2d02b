// Shapes of the Playground widget's traits and messages (see docs/widget-protocol.md). The protocol itself
// is generated from src/nbplayground/widgets/protocol.py into ./protocol.ts; only front-end types live here.

import type { Traits } from "./protocol";

export * from "./protocol";

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
