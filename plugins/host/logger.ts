// The logger the plugin host writes to: the front passes its own (proto/util/log.ts); without
// one, PluginHost writes JSON lines to stderr.
import type { Logger } from "../../proto/util/log.ts";

/** The host never logs at debug level: any logger with the other three levels will do. */
export type HostLogger = Pick<Logger, "info" | "warn" | "error">;
