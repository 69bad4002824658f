// Structured JSON logs, one line each: the front, the plugin host and the edge write the same
// shape. Callers pass metadata only: never tokens, secrets or payloads.
export type Level = "debug" | "info" | "warn" | "error";
export const LEVELS: readonly Level[] = ["debug", "info", "warn", "error"];
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLevel(x: unknown): x is Level {
  return typeof x === "string" && (LEVELS as readonly string[]).includes(x);
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Writes each line to stderr (console.error: Node's process.stderr, the Workers log). */
export const stderrSink = (line: string): void => console.error(line);

export function createLogger(minLevel: Level = "info", sink: (line: string) => void = stderrSink): Logger {
  const at = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < order[minLevel]) return;
    sink(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
