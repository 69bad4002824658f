// `npm run federation -- <command>`: operator tooling for federation between regions.
//   keygen --data-dir DIR          create DIR's federation key if missing (with the other local
//                                  secrets) and print its public key (base64url) for peers
//   public-key --secrets FILE      the public key of FEDERATION_SIGNING_KEY in a JSON file
//                                  written by `npm run secrets` (a deployed region's key)
//   peers-sql --file PEERS.json    SQL that replaces the federation_peers table with the file's
//                                  peers, for `npx wrangler d1 execute qpq-edge --remote --file`
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadOrCreateSecrets } from "../local/secrets.ts";
import { publicKeyOf, readPeers } from "../local/federation.ts";

const USAGE = `usage:
  npm run federation -- keygen --data-dir DIR
  npm run federation -- public-key --secrets FILE
  npm run federation -- peers-sql --file PEERS.json`;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

const [command, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  options: { "data-dir": { type: "string" }, secrets: { type: "string" }, file: { type: "string" } },
  strict: true,
});

/** SQL string literal. */
const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

try {
  switch (command) {
    case "keygen": {
      const dir = values["data-dir"] ?? fail(USAGE);
      const secrets = await loadOrCreateSecrets(dir);
      process.stdout.write(`${publicKeyOf(secrets.FEDERATION_SIGNING_KEY)}\n`);
      break;
    }
    case "public-key": {
      const file = values.secrets ?? fail(USAGE);
      const parsed = JSON.parse(readFileSync(file, "utf8")) as { FEDERATION_SIGNING_KEY?: string };
      if (!parsed.FEDERATION_SIGNING_KEY) fail(`${file} has no FEDERATION_SIGNING_KEY`);
      process.stdout.write(`${publicKeyOf(parsed.FEDERATION_SIGNING_KEY)}\n`);
      break;
    }
    case "peers-sql": {
      const file = values.file ?? fail(USAGE);
      const now = Date.now();
      const lines = ["DELETE FROM federation_peers;"];
      for (const p of readPeers(file)) {
        const key = Buffer.from(p.publicKey, "base64url").toString("hex");
        lines.push(
          `INSERT INTO federation_peers (domain, url, public_key, updated_at) VALUES (${quote(p.domain)}, ${quote(p.url)}, X'${key}', ${now});`,
        );
      }
      process.stdout.write(lines.join("\n") + "\n");
      break;
    }
    default:
      fail(USAGE);
  }
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
