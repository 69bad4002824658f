// The front's version: the package's, read once (Health reports it next to the edge's).
import { readFileSync } from "node:fs";

export const FRONT_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;
