import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, expect, test } from "vitest";
import { PluginHost } from "../host/index.ts";
import { HOST_TEST_TIMEOUT_MS, memoryLogger, sampleEvent, tempDir } from "../host/test-support.ts";

const SOURCE = fileURLToPath(new URL("./address-filter.js", import.meta.url));
const hosts: PluginHost[] = [];
const d = tempDir();
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
});
afterAll(() => d.cleanup());

/** The example as an operator would configure it: the DENY/ALLOW constants edited. */
async function withConfig(deny: string[] | null, allow: string[] | null, log = memoryLogger()) {
  let code = readFileSync(SOURCE, "utf8");
  if (deny) code = code.replace(/^const DENY = .*$/m, `const DENY = ${JSON.stringify(deny)};`);
  if (allow) code = code.replace(/^const ALLOW = .*$/m, `const ALLOW = ${JSON.stringify(allow)};`);
  const file = d.write(`address-filter-${hosts.length}-${Date.now()}.js`, code);
  const host = await PluginHost.start({ files: [file], logger: log });
  hosts.push(host);
  const verdict = async (clientAddress: string) => {
    const r = await host.call("on_connect", sampleEvent("on_connect", { clientAddress }));
    return r.allow ? "allow" : r.reason;
  };
  return { host, verdict };
}

const REFUSED = "connection refused by address policy";

test(
  "shipped deny list: CIDR prefixes and single addresses, IPv4, IPv6 and IPv4-mapped",
  async () => {
    const host = await PluginHost.start({ files: [SOURCE], logger: memoryLogger() });
    hosts.push(host);
    expect(host.plugins[0]).toMatchObject({ name: "address-filter", hooks: ["on_connect"] });
    const verdict = async (clientAddress: string) => {
      const r = await host.call("on_connect", sampleEvent("on_connect", { clientAddress }));
      return r.allow ? "allow" : r.reason;
    };
    expect(await verdict("192.0.2.55:4433")).toBe(REFUSED);
    expect(await verdict("192.0.3.1:4433")).toBe("allow");
    expect(await verdict("198.51.100.7:1")).toBe(REFUSED);
    expect(await verdict("198.51.100.8:1")).toBe("allow");
    expect(await verdict("[2001:db8:bad::1]:443")).toBe(REFUSED);
    expect(await verdict("[2001:db8:bad:ffff:1:2:3:4]:443")).toBe(REFUSED);
    expect(await verdict("[2001:db8:bae::1]:443")).toBe("allow");
    expect(await verdict("[::ffff:192.0.2.1]:443")).toBe(REFUSED);
    expect(await verdict("[::ffff:c000:0201]:443")).toBe(REFUSED);
    expect(await verdict("127.0.0.1:5000")).toBe("allow");
    expect(await verdict("not-an-address")).toBe("connection refused: unrecognised client address");
  },
  HOST_TEST_TIMEOUT_MS,
);

test(
  "allow list: only matching addresses get in",
  async () => {
    const { verdict } = await withConfig([], ["10.0.0.0/8", "::1", "fd00::/8"]);
    expect(await verdict("10.1.2.3:5")).toBe("allow");
    expect(await verdict("11.0.0.1:5")).toBe(REFUSED);
    expect(await verdict("[::1]:5")).toBe("allow");
    expect(await verdict("[::2]:5")).toBe(REFUSED);
    expect(await verdict("[fd12:3456::1]:5")).toBe("allow");
    expect(await verdict("[fe80::1%eth0]:5")).toBe(REFUSED);
  },
  HOST_TEST_TIMEOUT_MS,
);

test(
  "prefix lengths that are not byte-aligned",
  async () => {
    const { verdict } = await withConfig(["100.64.0.0/10", "2001:db8::/31"], null);
    expect(await verdict("100.127.255.255:1")).toBe(REFUSED);
    expect(await verdict("100.128.0.0:1")).toBe("allow");
    expect(await verdict("[2001:db9::1]:1")).toBe(REFUSED);
    expect(await verdict("[2001:dba::1]:1")).toBe("allow");
  },
  HOST_TEST_TIMEOUT_MS,
);

test(
  "a malformed entry makes the plugin fail to load, and says which",
  async () => {
    const log = memoryLogger();
    const { host } = await withConfig(["10.0.0.0/33"], null, log);
    expect(host.plugins).toEqual([]);
    expect(log.find("plugin failed to load; skipped")[0].fields.error).toMatch(/bad entry "10\.0\.0\.0\/33"/);
  },
  HOST_TEST_TIMEOUT_MS,
);
