// The logger the plugin host writes to (the front passes its own), and a JSON-lines stderr
// logger for when none is given.

export interface HostLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + "\n");

export const stderrLogger: HostLogger = { info: line("info"), warn: line("warn"), error: line("error") };
