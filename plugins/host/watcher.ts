// Watches the plugin directories and reports a change once things have been quiet for a moment,
// so that an editor's write-rename-delete dance (or a `cp` of several files) is one reload.
import { watch, type FSWatcher } from "node:fs";
import type { HostLogger } from "./logger.ts";

const DEBOUNCE_MS = 100;

export class PluginWatcher {
  private readonly watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly onChange: () => void;

  private constructor(onChange: () => void) {
    this.onChange = onChange;
  }

  /** Watches `dirs`; `onChange` runs 100 ms after the last change. A directory that cannot be watched is logged and skipped. */
  static start(dirs: readonly string[], onChange: () => void, logger: HostLogger): PluginWatcher {
    const w = new PluginWatcher(onChange);
    for (const d of dirs) {
      try {
        const fw = watch(d, { persistent: false }, () => w.changed());
        fw.on("error", (err) => logger.error("plugin directory watch failed", { dir: d, error: err.message }));
        w.watchers.push(fw);
      } catch (err) {
        logger.error("cannot watch plugin directory", { dir: d, error: (err as Error).message });
      }
    }
    return w;
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.splice(0)) w.close();
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
  }

  private changed(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      if (!this.closed) this.onChange();
    }, DEBOUNCE_MS);
  }
}
