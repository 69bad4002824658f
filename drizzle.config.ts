import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes numbered SQL migrations into the folder wrangler applies.
export default defineConfig({
  dialect: "sqlite",
  schema: "./schema/tables.ts",
  out: "./schema/migrations",
});
