/** Rewrites `src/schema.ts` from the `/openapi.json` of a freshly started sessanger. */

import { writeFileSync } from "node:fs";

import { SCHEMA_FILE, schemaSource } from "../test/schema-source.js";
import { startServer } from "../test/server.js";

const server = await startServer();
try {
  const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as object;
  writeFileSync(SCHEMA_FILE, await schemaSource(document));
  console.log(`wrote ${SCHEMA_FILE}`);
} finally {
  await server.stop();
}
