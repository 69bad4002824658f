// `npm start` as an operator runs it: one command, prints where it listens, serves QUIC and
// /metrics, and stops cleanly on SIGTERM.
import { describe, it, expect } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { QpqClient } from "../../sdk/client.ts";

const root = new URL("../..", import.meta.url).pathname;

describe("npm start", () => {
  it("runs the whole system, reports its addresses, serves metrics and stops on SIGTERM", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "qpq-start-"));
    const proc = spawn(process.execPath, [join(root, "scripts/start.ts")], {
      cwd: root,
      env: { ...process.env, QPQ_DATA_DIR: dataDir, QPQ_LISTEN: "127.0.0.1:0", QPQ_METRICS_LISTEN: "127.0.0.1:0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const running = await new Promise<{ quic: string; metrics: string }>((resolve, reject) => {
        const lines = createInterface({ input: proc.stderr });
        lines.on("line", (line) => {
          try {
            const entry = JSON.parse(line) as { msg: string; quic: string; metrics: string };
            if (entry.msg === "qpq-edge is running") resolve(entry);
            if (entry.msg === "start-up failed") reject(new Error(line));
          } catch { /* not a log line */ }
        });
        proc.once("exit", (code) => reject(new Error(`exited early with ${code}`)));
      });
      const port = Number(/:(\d+) /.exec(running.quic)?.[1]);
      const ca = readFileSync(join(dataDir, "dev-cert.pem"), "utf8");
      const client = await QpqClient.connect({ host: "127.0.0.1", port, ca });
      expect((await client.health()).status).toBe("ok");
      await client.close();

      const metrics = await (await fetch(running.metrics)).text();
      expect(metrics).toContain("# TYPE enqueue_total counter");
      expect(metrics).toMatch(/rpc_total\{method="Health",status="Ok"\} 1/);

      const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
      proc.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
