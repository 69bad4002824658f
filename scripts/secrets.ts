// `npm run secrets`: prints fresh edge secrets (JSON) for `wrangler secret put` and the fronts.
import { generateSecrets } from "../local/secrets.ts";

process.stdout.write(JSON.stringify(await generateSecrets(), null, 2) + "\n");
