#!/usr/bin/env node
// `qpq`: a small command-line client for trying a qpq server by hand (see --help).
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline/promises";
import { Status, statusName } from "../proto/index.ts";
import { KtVerificationError, QpqCallError, QpqClient, newDeviceId, type KtTrust } from "./client.ts";
import { getFile, putFile } from "./blob.ts";
import { RecoveryError, newRecoveryToken } from "./recovery.ts";
import { ProfileError, ProfileStore, b64u, checkProfileName, newIdentity, type Profile } from "./profile.ts";
import { listGroupMembers, updateGroup } from "./groups.ts";
import { banUser, listBanned, listReports, reportMessage, unbanUser } from "./moderation.ts";
import { EnvelopeError, generateHybridKeyPair, isEnvelope, openEnvelope, sealEnvelope } from "./hybrid-envelope.ts";

const USAGE = `qpq — command-line client for a qpq server

Usage:
  qpq health                       check that the server answers; show front and edge versions and uptimes
  qpq register <username>          create an identity key pair, register it, save the profile
  qpq login <username> [--device <id>]
                                   log in (as the account's default device, or as a device
                                   added with qpq device add) and save the session token
  qpq send <username> <message…>   send a text message to <username> (name@domain: a user of another
                                   region); prints its seq (0 when relayed: the home region assigns it)
  qpq resolve <username>           print <username>'s identity key once its key-transparency
                                   proof verifies (refused, exit 1, when it does not)
  qpq recv [--wait <seconds>]      print pending messages as "seq<TAB>text", then ack them
  qpq whoami                       show the current profile
  qpq devices                      list the account's devices (* marks this one)
  qpq device add <name>            register another device (at most 5, the default included);
                                   prints the id to log in with on that device
  qpq device revoke <id|default>   revoke a device: its sessions end at once, its slot is freed
  qpq blob put <file> [--share <username>]…
                                   upload a file (at most 50 MiB) in 1 MiB chunks; run it again
                                   after an interruption and it resumes where the server's copy
                                   ends; prints the blob id (hex SHA-256) to download it by
  qpq blob get <blob id> <file>    download a blob you uploaded or that was shared with you; a
                                   cut-off download resumes from <file>.part; the SHA-256 is checked
  qpq recovery setup               store this profile's keys on the server, sealed under a new
                                   recovery token printed once: keep it offline
  qpq recovery restore <token>     on a machine that lost the profile: fetch and open the keys
                                   (no login needed) and save the profile; then qpq login
  qpq recovery delete              delete the account's recovery bundle from the server
  qpq delete-account [--yes]       delete the account and everything the server holds for it,
                                   after typing the username to confirm (--yes: no question);
                                   the profile is removed and the name can be registered again
  qpq group create <name> [user…]  create a group channel with these members; prints its id
  qpq group info <channel>         name, description, default TTL and members (role, key, name)
  qpq group add <channel> <user…>  add members (the group's creator or an admin)
  qpq group remove <channel> <user>
                                   remove a member (creator or admin); qpq group leave <channel>
  qpq group rename <channel> <name…>
  qpq group ttl <channel> <secs>   default TTL of messages sent to the group without one
                                   (disappearing messages; 0 = the server's default)
  qpq group admin <channel> <user> make a member an admin (the creator only)
  qpq group ban <channel> <user>   ban from the group: removed, cannot be re-added or send there
  qpq report <user> <evidence file> <reason…>
                                   report a user to the server's administrators; the file is
                                   the evidence, already encrypted for them (sent as it is)
  qpq ban <user> [reason…]         administrators: ban server-wide (sessions end, no login)
  qpq unban <user>                 administrators: lift a server-wide ban
  qpq bans                         administrators: list server-wide bans
  qpq reports                      administrators: list the newest reports

Options:
  --server <host:port>   server address          (env QPQ_SERVER, default 127.0.0.1:5001)
  --ca <pem file>        CA certificate to trust (env QPQ_CA, default $QPQ_DATA_DIR/dev-ca.pem,
                                                  QPQ_DATA_DIR defaulting to .qpq-data)
  --profile <dir>        profile directory       (env QPQ_PROFILE, default ~/.qpq)
  --as <username>        profile to use for send, recv and whoami (default: the last one
                         registered or logged in)
  --wait <seconds>       recv: wait up to this long (at most 60) for a first message
  --device <id>          login: the device (hex id from qpq device add) this session belongs to
  --yes                  delete-account: do not ask for confirmation
  --share <username>     blob put: also let this user download the blob (repeatable)
  -h, --help             show this help

The password comes from QPQ_PASSWORD, or is asked for on the terminal.
Profiles (<dir>/<username>.json, mode 0600) hold the private key and the session token.

Note: login creates a hybrid (X25519 + ML-KEM-768) key pair for the profile and uploads its
public half. send pads the text (Padmé) and seals it to the recipient's hybrid key when the
recipient has one (docs/protocol.md, "Hybrid envelope"); otherwise it goes as UTF-8 plaintext,
which the server can read. Real qpq clients send MLS ciphertext; this CLI is for trying the
server out.
recv shows control characters escaped and non-UTF-8 payloads as "[N bytes, not UTF-8]", and
says "no messages" on stderr when there were none.
`;

/** An expected failure: printed as one line, exit code 1. */
class CliError extends Error {}

type Options = {
  server?: string;
  ca?: string;
  profile?: string;
  as?: string;
  wait?: string;
  device?: string;
  yes?: boolean;
  share?: string[];
  help?: boolean;
};

const OPTION_COMMANDS: Partial<Record<keyof Options, string[]>> = {
  as: [
    "send",
    "recv",
    "whoami",
    "resolve",
    "devices",
    "device",
    "delete-account",
    "group",
    "report",
    "ban",
    "unban",
    "bans",
    "reports",
    "blob",
    "recovery",
  ],
  wait: ["recv"],
  device: ["login"],
  yes: ["delete-account"],
  share: ["blob"],
};

const env = process.env;
const out = (line: string) => process.stdout.write(`${line}\n`);

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: "string" },
        ca: { type: "string" },
        profile: { type: "string" },
        as: { type: "string" },
        wait: { type: "string" },
        device: { type: "string" },
        yes: { type: "boolean" },
        share: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new CliError(`${(err as Error).message.split(". ")[0]} (see qpq --help)`);
  }
  const opts: Options = parsed.values;
  const [command, ...args] = parsed.positionals;
  if (opts.help || command === undefined || command === "help") {
    process.stdout.write(USAGE);
    return;
  }
  for (const [name, commands] of Object.entries(OPTION_COMMANDS)) {
    if (opts[name as keyof Options] !== undefined && !commands.includes(command)) {
      throw new CliError(`--${name} does not apply to ${command}`);
    }
  }
  const store = new ProfileStore(opts.profile ?? env.QPQ_PROFILE ?? join(homedir(), ".qpq"));

  switch (command) {
    case "health": {
      expectArgs(args, 0, "qpq health");
      const res = await withClient(opts, (c) => c.health());
      // Front and edge separately when the server reports them (the edge's uptime is its
      // isolate's: isolates start on demand).
      const parts = [
        res.frontVersion
          ? `front ${res.frontVersion} up ${res.frontUptimeSecs}s`
          : `version ${res.version}, up ${res.uptimeSecs}s`,
        ...(res.edgeVersion ? [`edge ${res.edgeVersion}, isolate up ${res.edgeUptimeSecs}s`] : []),
      ];
      out(`${res.status} (${parts.join("; ")})`);
      return;
    }

    case "register": {
      const username = checkProfileName(oneArg(args, "qpq register <username>"));
      if (store.find(username)) {
        throw new CliError(
          `a profile for ${username} already exists (${store.pathOf(username)}); delete it to register again`,
        );
      }
      const password = await readPassword(`Password for new user ${username}: `, true);
      const { identityKey, privateKeyPem } = newIdentity();
      const ok = await withClient(opts, (c) => c.register(username, password, identityKey));
      if (!ok) {
        throw new CliError(
          `username ${username} is already taken on ${serverOf(opts)}; if it is yours, ${waysToThisMachine(username)}`,
        );
      }
      store.save({
        version: 1,
        username,
        identityKey: b64u.encode(identityKey),
        privateKey: privateKeyPem,
        server: serverOf(opts),
      });
      store.setCurrent(username);
      out(`registered ${username}; now run: qpq login ${username}`);
      return;
    }

    case "login": {
      const username = checkProfileName(oneArg(args, "qpq login <username>"));
      const profile = store.find(username);
      if (!profile) {
        throw new CliError(
          `this machine has no identity key for ${username} (no ${store.pathOf(username)}); ` +
            `${waysToThisMachine(username)}; or, if ${username} is not registered yet, run: qpq register ${username}`,
        );
      }
      const password = await readPassword(`Password for ${username}: `, false);
      const device = opts.device === undefined ? new Uint8Array(0) : parseDeviceId(opts.device);
      // A hybrid key pair, made once per profile and uploaded at every login (it replaces the
      // server's copy), so senders can wrap messages to it.
      const hybrid = profile.hybrid ?? (await newHybridKeys());
      const token = await withClient(opts, async (c) => {
        const t = await c.login(username, password, b64u.decode(profile.identityKey), device);
        await c.uploadHybridKey(b64u.decode(hybrid.publicKey));
        return t;
      });
      store.save({
        ...profile,
        hybrid,
        sessionToken: b64u.encode(token),
        deviceId: hexOf(device),
        server: serverOf(opts),
      });
      store.setCurrent(username);
      out(`logged in as ${username}${device.length > 0 ? ` on device ${hexOf(device)}` : ""}`);
      return;
    }

    case "send": {
      if (args.length < 2) throw new CliError("usage: qpq send <username> <message…>");
      const [recipient, ...words] = args;
      const profile = store.load(opts.as);
      const res = await withSession(opts, profile, async (c) => {
        const recipientKey = await resolveVerified(c, store, profile, recipient);
        const message = new TextEncoder().encode(words.join(" "));
        // With a hybrid key the text goes padded and sealed to it; else as plain bytes.
        const hybridKey = await c.fetchHybridKey(recipientKey);
        const payload = hybridKey.length > 0 ? await sealEnvelope(hybridKey, message) : message;
        return c.enqueue({ recipientKey, payload });
      });
      out(String(res.seq));
      return;
    }

    case "resolve": {
      const username = oneArg(args, "qpq resolve <username>");
      const profile = store.load(opts.as);
      await withSession(opts, profile, async (c) => {
        const seenBefore = profile.kt?.treeSize;
        const identityKey = await resolveVerified(c, store, profile, username);
        const r = c.lastResolution;
        if (!r) return;
        const revocation = await c.checkRevocation(identityKey);
        out(`username  ${r.entry.username}`);
        out(`identity  ${Buffer.from(identityKey).toString("hex")}`);
        out(
          `proof     verified: binding at leaf ${r.leafIndex} of a ${r.head.treeSize}-entry log, head signed ${new Date(r.head.timestampMs).toISOString()}`,
        );
        // name@domain: verified against the home region's log key (pinned by the SDK per domain).
        const home = username.includes("@") ? username.slice(username.lastIndexOf("@") + 1).toLowerCase() : undefined;
        out(
          `log       ${
            home !== undefined
              ? `${home}'s log, key ${Buffer.from(c.remoteKt.get(home) ?? []).toString("hex")}`
              : seenBefore === undefined
                ? `first tree head seen; log key pinned now: ${Buffer.from(c.kt.publicKey ?? []).toString("hex")}`
                : `consistent with the ${seenBefore}-entry tree head seen before`
          }`,
        );
        out(
          `revoked   ${revocation.revoked ? `yes (${revocation.reason}, ${new Date(revocation.timestampMs).toISOString()})` : "no"}`,
        );
      });
      return;
    }

    case "recv": {
      expectArgs(args, 0, "qpq recv [--wait <seconds>]");
      const waitMs = opts.wait === undefined ? 0 : parseWait(opts.wait);
      const profile = store.load(opts.as);
      const shown = await withSession(opts, profile, async (c) => {
        const limit = 100;
        let count = 0;
        let batch = waitMs > 0 ? await c.fetchWait({ timeoutMs: waitMs, limit }) : await c.fetch({ limit });
        while (batch.length > 0) {
          for (const e of batch) out(`${e.seq}\t${await showMessage(profile, e.data)}`);
          count += batch.length;
          await c.ack(Math.max(...batch.map((e) => e.seq)));
          if (batch.length < limit) break;
          batch = await c.fetch({ limit });
        }
        return count;
      });
      // On stderr, so a script reading stdout sees only messages.
      if (shown === 0) process.stderr.write("no messages\n");
      return;
    }

    case "whoami": {
      expectArgs(args, 0, "qpq whoami");
      const profile = store.load(opts.as);
      out(`username  ${profile.username}`);
      out(`identity  ${Buffer.from(b64u.decode(profile.identityKey)).toString("hex")}`);
      out(
        `session   ${profile.sessionToken ? `saved (from ${profile.server ?? "unknown server"})` : "none; run: qpq login " + profile.username}`,
      );
      out(`profile   ${store.pathOf(profile.username)}`);
      return;
    }

    case "devices": {
      expectArgs(args, 0, "qpq devices");
      const profile = store.load(opts.as);
      const { devices } = await withSession(opts, profile, (c) => c.listDevices());
      for (const d of devices) {
        const seen = d.lastSeenMs > 0 ? new Date(d.lastSeenMs).toISOString() : "never";
        out(
          `${d.current ? "*" : " "} ${showDeviceId(d.deviceId)}\t${showPayload(new TextEncoder().encode(d.name))}\tadded ${new Date(d.registeredAtMs).toISOString()}\tlast seen ${seen}`,
        );
      }
      return;
    }

    case "device": {
      const [action, ...rest] = args;
      const profile = store.load(opts.as);
      if (action === "add") {
        const name = oneArg(rest, "qpq device add <name>");
        const id = newDeviceId();
        await withSession(opts, profile, (c) => c.registerDevice(id, name));
        out(`added device ${hexOf(id)} (${name}) to ${profile.username}`);
        out(
          `on that device, with a copy of ${profile.username}.json, run: qpq login ${profile.username} --device ${hexOf(id)}`,
        );
        return;
      }
      if (action === "revoke") {
        const id = parseDeviceId(oneArg(rest, "qpq device revoke <id|default>"));
        await withSession(opts, profile, (c) => c.revokeDevice(id));
        // Revoking this machine's own device ends the saved session too.
        if ((profile.deviceId ?? "") === hexOf(id)) store.save({ ...profile, sessionToken: undefined });
        out(`revoked device ${showDeviceId(id)} of ${profile.username}`);
        return;
      }
      throw new CliError("usage: qpq device add <name> | qpq device revoke <id|default>");
    }

    case "blob": {
      const [action, ...rest] = args;
      const profile = store.load(opts.as);
      if (action === "put") {
        const file = oneArg(rest, "qpq blob put <file> [--share <username>]…");
        const res = await withSession(opts, profile, async (c) => {
          const shareWith: Uint8Array[] = [];
          for (const name of opts.share ?? []) shareWith.push(await resolveVerified(c, store, profile, name));
          return putFile(c.blobs, file, { shareWith });
        });
        if (res.resumedAt > 0 && res.resumedAt < res.size) {
          process.stderr.write(`resumed at byte ${res.resumedAt} of ${res.size}\n`);
        }
        out(hexOf(res.hash));
        return;
      }
      if (action === "get") {
        if (rest.length !== 2) throw new CliError("usage: qpq blob get <blob id> <file>");
        const [id, file] = rest;
        if (!/^[0-9a-f]{64}$/i.test(id)) throw new CliError(`a blob id is 64 hex digits (its SHA-256), got "${id}"`);
        const res = await withSession(opts, profile, (c) =>
          getFile(c.blobs, new Uint8Array(Buffer.from(id, "hex")), file),
        );
        out(`${file}: ${res.size} bytes${res.resumedAt > 0 ? ` (resumed at byte ${res.resumedAt})` : ""}`);
        return;
      }
      throw new CliError("usage: qpq blob put <file> [--share <username>]… | qpq blob get <blob id> <file>");
    }

    case "recovery": {
      const [action, ...rest] = args;
      if (action === "setup" || action === "delete") {
        expectArgs(rest, 0, `qpq recovery ${action}`);
        const profile = store.load(opts.as);
        if (action === "delete") {
          await withSession(opts, profile, (c) => c.recovery.delete());
          out(`deleted the recovery bundle of ${profile.username}`);
          return;
        }
        const token = newRecoveryToken();
        const keys = {
          version: profile.version,
          username: profile.username,
          identityKey: profile.identityKey,
          privateKey: profile.privateKey,
          hybrid: profile.hybrid,
        };
        await withSession(opts, profile, (c) =>
          c.recovery.store(token, new TextEncoder().encode(JSON.stringify(keys))),
        );
        out(b64u.encode(token));
        process.stderr.write(
          `the line above is ${profile.username}'s recovery token: keep it offline; with it, qpq recovery restore brings the keys back (a new setup replaces it)\n`,
        );
        return;
      }
      if (action === "restore") {
        const text = oneArg(rest, "qpq recovery restore <token>");
        const token = b64u.decode(text);
        if (token.length !== 32) throw new CliError("a recovery token is 43 base64url characters (32 bytes)");
        let plain: Uint8Array;
        try {
          plain = await withClient(opts, (c) => c.recovery.fetch(token));
        } catch (err) {
          if (err instanceof QpqCallError && err.status === Status.NotFound) {
            throw new CliError("the server holds no recovery bundle for this token");
          }
          if (err instanceof RecoveryError) throw new CliError(err.message);
          throw err;
        }
        const keys = JSON.parse(new TextDecoder().decode(plain)) as Partial<Profile>;
        if (
          keys.version !== 1 ||
          typeof keys.username !== "string" ||
          typeof keys.identityKey !== "string" ||
          typeof keys.privateKey !== "string"
        ) {
          throw new CliError("the recovery bundle does not hold a qpq profile");
        }
        const username = checkProfileName(keys.username);
        if (store.find(username))
          throw new CliError(`a profile for ${username} exists already (${store.pathOf(username)})`);
        store.save({
          version: 1,
          username,
          identityKey: keys.identityKey,
          privateKey: keys.privateKey,
          hybrid: keys.hybrid,
          server: serverOf(opts),
        });
        store.setCurrent(username);
        out(`restored ${username}; now run: qpq login ${username}`);
        return;
      }
      throw new CliError("usage: qpq recovery setup | qpq recovery restore <token> | qpq recovery delete");
    }

    case "delete-account": {
      expectArgs(args, 0, "qpq delete-account [--yes]");
      const profile = store.load(opts.as);
      if (!opts.yes) await confirmDeletion(profile.username);
      await withSession(opts, profile, (c) => c.deleteAccount());
      store.remove(profile.username);
      out(
        `deleted ${profile.username} and everything the server held for it; removed ${store.pathOf(profile.username)}`,
      );
      return;
    }

    case "group":
      return groupCommand(opts, store, args);

    case "report": {
      if (args.length < 3) throw new CliError("usage: qpq report <user> <evidence file> <reason…>");
      const [who, file, ...reason] = args;
      const evidence = readEvidence(file);
      const profile = store.load(opts.as);
      const id = await withSession(opts, profile, async (c) =>
        reportMessage(c, {
          reportedKey: await resolveVerified(c, store, profile, who),
          evidence,
          reason: reason.join(" "),
        }),
      );
      out(`reported ${who} (report ${hexOf(id)})`);
      return;
    }

    case "ban":
    case "unban": {
      if (args.length < 1 || (command === "unban" && args.length !== 1))
        throw new CliError(command === "ban" ? "usage: qpq ban <user> [reason…]" : "usage: qpq unban <user>");
      const [who, ...reason] = args;
      const profile = store.load(opts.as);
      await withSession(opts, profile, async (c) => {
        const key = await resolveVerified(c, store, profile, who);
        return command === "ban" ? banUser(c, key, { reason: reason.join(" ") }) : unbanUser(c, key);
      });
      out(command === "ban" ? `banned ${who} server-wide` : `lifted the ban of ${who}`);
      return;
    }

    case "bans": {
      expectArgs(args, 0, "qpq bans");
      const bans = await withSession(opts, store.load(opts.as), (c) => listBanned(c));
      for (const b of bans) {
        const until = b.expiresAtMs > 0 ? new Date(b.expiresAtMs).toISOString() : "permanent";
        out(`${hexOf(b.identityKey)}\t${until}\t${showPayload(new TextEncoder().encode(b.reason))}`);
      }
      if (bans.length === 0) process.stderr.write("no bans\n");
      return;
    }

    case "reports": {
      expectArgs(args, 0, "qpq reports");
      const reports = await withSession(opts, store.load(opts.as), (c) => listReports(c));
      for (const r of reports) {
        out(
          `${hexOf(r.reportId)}\t${new Date(r.createdAtMs).toISOString()}\treporter ${hexOf(r.reporterKey)}\treported ${hexOf(r.reportedKey)}\t${r.evidence.length} bytes of evidence\t${showPayload(new TextEncoder().encode(r.reason))}`,
        );
      }
      if (reports.length === 0) process.stderr.write("no reports\n");
      return;
    }

    default:
      throw new CliError(`unknown command "${command}" (see qpq --help)`);
  }
}

/**
 * Resolves through the key-transparency log with the profile's pinned log key and last verified
 * tree head, and saves the new head. A failed verification is refused, never printed as a key.
 */
async function resolveVerified(
  c: QpqClient,
  store: ProfileStore,
  profile: Profile,
  username: string,
): Promise<Uint8Array> {
  const trust: KtTrust = profile.kt
    ? {
        publicKey: b64u.decode(profile.kt.publicKey),
        head: {
          treeSize: profile.kt.treeSize,
          root: b64u.decode(profile.kt.root),
          timestampMs: profile.kt.timestampMs,
        },
      }
    : {};
  c.kt = trust;
  let key: Uint8Array;
  try {
    key = await c.resolveUser(username);
  } catch (err) {
    if (err instanceof KtVerificationError)
      throw new CliError(`refusing the key the server gave for ${username}: ${err.message}`);
    throw err;
  }
  const { publicKey, head } = c.kt;
  if (publicKey && head) {
    store.save({
      ...profile,
      kt: {
        publicKey: b64u.encode(publicKey),
        treeSize: head.treeSize,
        root: b64u.encode(head.root),
        timestampMs: head.timestampMs,
      },
    });
  }
  return key;
}

/** How a username registered elsewhere gets onto this machine: its key must come along. */
/** qpq group …: members and targets are usernames, resolved through the key-transparency log. */
async function groupCommand(opts: Options, store: ProfileStore, args: string[]): Promise<void> {
  const [action, channelText, ...rest] = args;
  const usage =
    "usage: qpq group create <name> [user…] | info|leave <channel> | add <channel> <user…> | " +
    "remove|admin|ban <channel> <user> | rename <channel> <name…> | ttl <channel> <secs>";
  if (action === undefined || channelText === undefined) throw new CliError(usage);
  const profile = store.load(opts.as);
  const keysOf = (c: QpqClient, users: string[]) =>
    Promise.all(users.map((u) => resolveVerified(c, store, profile, u)));
  if (action === "create") {
    const id = await withSession(opts, profile, async (c) => {
      return (await c.createGroupChannel(await keysOf(c, rest), channelText)).channelId;
    });
    out(hexOf(id));
    return;
  }
  const channel = parseChannelId(channelText);
  switch (action) {
    case "info": {
      expectArgs(rest, 0, "qpq group info <channel>");
      // Members with their usernames (ResolveIdentity; "?" for one the server does not know).
      const { g, names } = await withSession(opts, profile, async (c) => {
        const g = await listGroupMembers(c, channel);
        const names = await Promise.all(
          g.members.map((m) =>
            c.resolveIdentity(m.identityKey).then(
              (r) => r.username,
              () => "?",
            ),
          ),
        );
        return { g, names };
      });
      out(`name\t${showPayload(new TextEncoder().encode(g.name))}`);
      if (g.description) out(`description\t${showPayload(new TextEncoder().encode(g.description))}`);
      out(`default ttl\t${g.defaultTtlSecs > 0 ? `${g.defaultTtlSecs}s` : "server default"}`);
      g.members.forEach((m, i) =>
        out(`${m.role}\t${hexOf(m.identityKey)}\t${showPayload(new TextEncoder().encode(names[i]))}`),
      );
      return;
    }
    case "leave":
      expectArgs(rest, 0, "qpq group leave <channel>");
      await withSession(opts, profile, (c) => c.removeMember(channel, b64u.decode(profile.identityKey)));
      out(`left ${channelText}`);
      return;
    case "add": {
      if (rest.length === 0) throw new CliError("usage: qpq group add <channel> <user…>");
      const added = await withSession(opts, profile, async (c) =>
        updateGroup(c, channel, { addMembers: await keysOf(c, rest) }),
      );
      out(`added ${added.length} member(s)`);
      return;
    }
    case "remove":
    case "admin":
    case "ban": {
      const who = oneArg(rest, `qpq group ${action} <channel> <user>`);
      await withSession(opts, profile, async (c) => {
        const key = await resolveVerified(c, store, profile, who);
        if (action === "remove") return c.removeMember(channel, key);
        if (action === "admin") return updateGroup(c, channel, { makeAdmins: [key] });
        return banUser(c, key, { channelId: channel });
      });
      out(`${action === "remove" ? "removed" : action === "admin" ? "made admin:" : "banned"} ${who}`);
      return;
    }
    case "rename":
      if (rest.length === 0) throw new CliError("usage: qpq group rename <channel> <name…>");
      await withSession(opts, profile, (c) => updateGroup(c, channel, { name: rest.join(" ") }));
      out(`renamed ${channelText}`);
      return;
    case "ttl": {
      const secs = Number(oneArg(rest, "qpq group ttl <channel> <secs>"));
      if (!Number.isSafeInteger(secs) || secs < 0 || secs > 0xffffffff)
        throw new CliError("the TTL is a whole number of seconds (0 = the server's default)");
      await withSession(opts, profile, (c) => updateGroup(c, channel, { defaultTtlSecs: secs }));
      out(`default TTL of ${channelText}: ${secs > 0 ? `${secs}s` : "server default"}`);
      return;
    }
    default:
      throw new CliError(usage);
  }
}

function parseChannelId(text: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2}){1,64}$/i.test(text)) throw new CliError(`a channel id is 1-64 bytes in hex, got "${text}"`);
  return new Uint8Array(Buffer.from(text, "hex"));
}

function readEvidence(file: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (err) {
    throw new CliError(`cannot read the evidence file ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** Device ids on the command line: hex (as qpq device add prints them), or "default". */
function parseDeviceId(text: string): Uint8Array {
  if (text === "default") return new Uint8Array(0);
  if (!/^(?:[0-9a-f]{2}){1,64}$/i.test(text))
    throw new CliError(`a device id is 1-64 bytes in hex (or "default"), got "${text}"`);
  return new Uint8Array(Buffer.from(text, "hex"));
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

function showDeviceId(id: Uint8Array): string {
  return id.length === 0 ? "default" : hexOf(id);
}

async function confirmDeletion(username: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new CliError("delete-account asks for confirmation on a terminal; pass --yes to delete without asking");
  }
  process.stderr.write(`This deletes ${username} on the server for good: messages, devices, keys, memberships.\n`);
  const typed = await promptLine(`Type ${username} to confirm: `);
  if (typed !== username) throw new CliError("not confirmed; nothing was deleted");
}

function waysToThisMachine(username: string): string {
  return (
    `copy the profile file ${username}.json (it holds the identity key) from the machine that registered ${username} ` +
    `into this profile directory; to add this machine as a device of ${username} with its own message cursor, also run ` +
    `qpq device add <name> on a signed-in machine, then qpq login ${username} --device <id> here`
  );
}

function expectArgs(args: string[], n: number, usage: string): void {
  if (args.length !== n) throw new CliError(`usage: ${usage}`);
}

function oneArg(args: string[], usage: string): string {
  expectArgs(args, 1, usage);
  return args[0];
}

function parseWait(text: string): number {
  const secs = Number(text);
  if (text.trim() === "" || !Number.isFinite(secs) || secs < 0 || secs > 60) {
    throw new CliError(`--wait takes 0-60 seconds, got "${text}"`);
  }
  return Math.round(secs * 1000);
}

/** Text for the terminal: control characters escaped so a message cannot drive the terminal. */
/** A received payload: opened first when it is a hybrid envelope and the profile holds the key. */
async function showMessage(profile: Profile, data: Uint8Array): Promise<string> {
  if (!isEnvelope(data)) return showPayload(data);
  if (!profile.hybrid) return `[${data.length} bytes, a hybrid envelope; this profile has no hybrid key]`;
  try {
    const keys = { publicKey: b64u.decode(profile.hybrid.publicKey), secretKey: b64u.decode(profile.hybrid.secretKey) };
    return showPayload(await openEnvelope(keys, data));
  } catch (err) {
    if (err instanceof EnvelopeError)
      return `[${data.length} bytes, a hybrid envelope that does not open: ${err.message}]`;
    throw err;
  }
}

async function newHybridKeys(): Promise<{ publicKey: string; secretKey: string }> {
  const pair = await generateHybridKeyPair();
  return { publicKey: b64u.encode(pair.publicKey), secretKey: b64u.encode(pair.secretKey) };
}

function showPayload(data: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return `[${data.length} bytes, not UTF-8]`;
  }
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu,
    (ch) => ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

// ── Server connection ───────────────────────────────────────────────────

function serverOf(opts: Options): string {
  return opts.server ?? env.QPQ_SERVER ?? "127.0.0.1:5001";
}

function parseServer(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) throw new CliError(`server must be host:port, got "${text}"`);
  return { host: m[1] ?? m[2], port };
}

async function withClient<T>(opts: Options, fn: (client: QpqClient) => Promise<T>): Promise<T> {
  const server = serverOf(opts);
  const { host, port } = parseServer(server);
  const caPath = opts.ca ?? env.QPQ_CA ?? join(env.QPQ_DATA_DIR ?? ".qpq-data", "dev-ca.pem");
  let ca: string;
  try {
    ca = readFileSync(caPath, "utf8");
  } catch (err) {
    throw new CliError(
      `cannot read the server certificate ${caPath} (${(err as NodeJS.ErrnoException).code ?? "error"}); ` +
        "start the server with npm start, or pass --ca / set QPQ_CA",
    );
  }
  let client: QpqClient;
  try {
    client = await QpqClient.connect({ host, port, ca, connectTimeoutMs: 5_000 });
  } catch (err) {
    const reason = describe(err);
    const hint = /timeout/i.test(reason)
      ? "no answer in 5s; is the server running there?"
      : /TLS/.test(reason)
        ? `${reason}; is ${caPath} the server's certificate?`
        : reason;
    throw new CliError(`cannot connect to ${server}: ${hint}`);
  }
  try {
    return await fn(client);
  } finally {
    await client.close().catch(() => {});
  }
}

/** Connects and resumes the profile's saved session before running `fn`. */
function withSession<T>(opts: Options, profile: Profile, fn: (client: QpqClient) => Promise<T>): Promise<T> {
  const token = profile.sessionToken;
  if (!token) throw new CliError(`${profile.username} is not logged in; run: qpq login ${profile.username}`);
  return withClient(opts, async (c) => {
    try {
      await c.resume(b64u.decode(token));
    } catch (err) {
      if (err instanceof QpqCallError && err.status === Status.Unauthorized) {
        throw new CliError(
          `the saved session of ${profile.username} is no longer valid; run: qpq login ${profile.username}`,
        );
      }
      throw err;
    }
    return fn(c);
  });
}

// ── Passwords ───────────────────────────────────────────────────────────

async function readPassword(prompt: string, confirm: boolean): Promise<string> {
  if (env.QPQ_PASSWORD !== undefined) return env.QPQ_PASSWORD;
  if (!process.stdin.isTTY) {
    throw new CliError("no password: set QPQ_PASSWORD or run qpq on a terminal to be asked for it");
  }
  const password = await promptHidden(prompt);
  if (password === "") throw new CliError("empty password");
  if (confirm && (await promptHidden("Repeat the password: ")) !== password) {
    throw new CliError("the passwords do not match");
  }
  return password;
}

/** Reads one line from the terminal, echoed. */
async function promptLine(prompt: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(prompt)).trim();
  } finally {
    rl.close();
  }
}

/** Reads one line from the terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  return new Promise((resolve, reject) => {
    let chars: string[] = [];
    const finish = (result: () => void) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      result();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return finish(() => resolve(chars.join("")));
        if (ch === "\u0003" || (ch === "\u0004" && chars.length === 0))
          return finish(() => reject(new CliError("cancelled")));
        if (ch === "\u007f" || ch === "\b") chars.pop();
        else if (ch === "\u0015")
          chars = []; // Ctrl-U
        else if (ch >= " ") chars.push(ch);
      }
    };
    stdin.on("data", onData);
  });
}

// ── Errors ──────────────────────────────────────────────────────────────

function describe(err: unknown): string {
  if (err instanceof QpqCallError) {
    // "Unauthorized (2) from method 104: login failed" → "Unauthorized (2): login failed"
    const detail = err.message.replace(/^.*? from method \d+: /, "");
    const retry = err.retryAfterMs > 0 ? ` (retry after ${Math.ceil(err.retryAfterMs / 1000)}s)` : "";
    return `${statusName(err.status)} (${err.status}): ${detail}${retry}`;
  }
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  const expected = err instanceof CliError || err instanceof ProfileError || err instanceof QpqCallError;
  process.stderr.write(`error: ${describe(err)}\n`);
  if (!expected && env.QPQ_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
  process.exitCode = 1;
}
