// `npm start` as an operator runs it: one command, prints where it listens, serves QUIC and
// /metrics, and stops cleanly on SIGTERM.
import { describe, it, expect } from "vitest";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
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
          } catch {
            /* not a log line */
          }
        });
        proc.once("exit", (code) => reject(new Error(`exited early with ${code}`)));
      });
      const port = Number(/:(\d+) /.exec(running.quic)?.[1]);
      const ca = readFileSync(join(dataDir, "dev-ca.pem"), "utf8");
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

  it("a port in use fails start-up with the listener and its address named", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "qpq-start-"));
    const taken = createSocket("udp4");
    taken.bind(0, "127.0.0.1");
    await once(taken, "listening");
    const port = taken.address().port;
    const proc = spawn(process.execPath, [join(root, "scripts/start.ts")], {
      cwd: root,
      env: {
        ...process.env,
        QPQ_DATA_DIR: dataDir,
        QPQ_LISTEN: `127.0.0.1:${port}`,
        QPQ_METRICS_LISTEN: "",
        QPQ_WS_LISTEN: "",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    try {
      const errors: string[] = [];
      createInterface({ input: proc.stderr }).on("line", (line) => {
        try {
          const entry = JSON.parse(line) as { msg: string; error?: string };
          if (entry.msg === "start-up failed") errors.push(entry.error ?? "");
        } catch {
          /* not a log line */
        }
      });
      const [code] = (await once(proc, "exit")) as [number | null];
      expect(code).toBe(1);
      expect(errors).toEqual([
        expect.stringMatching(new RegExp(`^QUIC listener could not listen on udp://127\\.0\\.0\\.1:${port}: `)),
      ]);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      taken.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
