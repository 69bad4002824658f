// protobufjs runtime settings, applied before the generated code is evaluated (it bakes default
// values at load time), identical on every runtime:
// - 64-bit fields are plain numbers. Otherwise Node finds long.js and yields Long objects
//   (which Durable Object RPC cannot serialise) while workerd yields numbers. Seqs and times stay
//   far below 2^53.
// - Plain Uint8Array reader/writer. With a global Buffer (nodejs_compat) protobufjs switches to
//   Buffer, and workerd's Buffer#utf8Write(string, offset) rejects strings of 40+ characters
//   (cloudflare/workerd#6875), which broke most ErrorResponse encodings.
import $protobuf from "protobufjs/minimal.js";

const util = $protobuf.util as { Long: unknown; Buffer: unknown };
util.Long = undefined;
util.Buffer = null;
$protobuf.configure();
