// The front's configuration in two steps: settings (validated without an edge, for `npm start`,
// which starts its own edge) and the edge link, validated together with them.
import { describe, expect, it } from "vitest";
import { configFromEnv, settingsFromEnv, withEdge } from "../../quic-front/config.ts";
import { localSettings } from "../../local/system.ts";
import { ConfigError } from "../../proto/util/config-error.ts";

describe("front settings", () => {
  it("are read and validated without an edge", () => {
    const s = settingsFromEnv({ QPQ_LOG_LEVEL: "warn", QPQ_STACK_TRACE_LIMIT: "7", QPQ_DATA_DIR: "/tmp/x" });
    expect(s).toMatchObject({ logLevel: "warn", stackTraceLimit: 7, dataDir: "/tmp/x" });
    expect(s).not.toHaveProperty("edgeUrl");
    expect(() => settingsFromEnv({ QPQ_LOG_LEVEL: "verbose" })).toThrow(ConfigError);
    expect(() => settingsFromEnv({ QPQ_STACK_TRACE_LIMIT: "many" })).toThrow(/QPQ_STACK_TRACE_LIMIT/);
  });

  it("become a configuration once the edge is known, validated as a whole", () => {
    const s = settingsFromEnv({});
    expect(withEdge(s, { edgeUrl: "http://127.0.0.1:8787", frontSecret: "s" })).toEqual(
      configFromEnv({ QPQ_EDGE_URL: "http://127.0.0.1:8787", QPQ_FRONT_SECRET: "s" }, { frontId: s.frontId }),
    );
    expect(() => withEdge(s, { edgeUrl: "", frontSecret: "s" })).toThrow(/QPQ_EDGE_URL/);
    const production = settingsFromEnv({ QPQ_PRODUCTION: "1", QPQ_TLS_CERT: "c", QPQ_TLS_KEY: "k" });
    expect(() => withEdge(production, { edgeUrl: "https://edge", frontSecret: "short" })).toThrow(/QPQ_FRONT_SECRET/);
  });

  it("of a local system listen on loopback unless QPQ_LISTEN says otherwise", () => {
    expect(localSettings({})).toMatchObject({ host: "127.0.0.1", port: 5001 });
    expect(localSettings({ QPQ_LISTEN: "0.0.0.0:6001" })).toMatchObject({ host: "0.0.0.0", port: 6001 });
  });
});
