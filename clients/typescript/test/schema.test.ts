/** The checked-in types are what the generator makes of the server's own OpenAPI document. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";

import { SCHEMA_FILE, schemaSource } from "./schema-source.js";
import { startServer } from "./server.js";

it("generated types match the server's OpenAPI document", async () => {
  const server = await startServer();
  try {
    const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as object;
    const expected = await schemaSource(document);
    // Compared as a whole; the message names the first line that differs.
    const checkedIn = readFileSync(SCHEMA_FILE, "utf8");
    if (checkedIn !== expected) {
      const [ours, theirs] = [checkedIn.split("\n"), expected.split("\n")];
      const line = ours.findIndex((text, i) => text !== theirs[i]);
      assert.fail(
        `${SCHEMA_FILE} has drifted from /openapi.json (first at line ${line + 1}: ` +
          `${JSON.stringify(ours[line])} vs ${JSON.stringify(theirs[line])}): run \`npm run generate\``,
      );
    }
  } finally {
    await server.stop();
  }
});
