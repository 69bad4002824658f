// protobufjs switches to its Buffer-backed writer whenever a global Buffer exists (nodejs_compat,
// default-on from compatibility date 2026-08-04). workerd's Buffer#utf8Write(string, offset)
// rejects the two-argument call protobufjs makes for strings of 40+ characters
// (cloudflare/workerd#6875), so such string fields — most ErrorResponse messages — failed to
// encode and the RPC became an HTTP 500. The edge always uses the plain Uint8Array writer/reader.
import $protobuf from "protobufjs/minimal.js";

($protobuf.util as { Buffer: unknown }).Buffer = null;
$protobuf.configure();
