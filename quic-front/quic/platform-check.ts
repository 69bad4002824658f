// Imported first by the entry points (`npm start`, the production front): on a machine without
// a matching native QUIC binding, print one clear line and exit before anything loads the
// binding. QPQ_QUIC_BINDING_CHECK=off skips the check (to try a mismatched binding anyway).
import { thisMachineProblem } from "./platform.ts";

if (process.env.QPQ_QUIC_BINDING_CHECK !== "off") {
  const problem = thisMachineProblem();
  if (problem) {
    process.stderr.write(`${problem} (QPQ_QUIC_BINDING_CHECK=off tries anyway)\n`);
    process.exit(1);
  }
}
