/** `src/schema.ts` as the generator writes it from an OpenAPI document. */

import openapiTS, { astToString } from "openapi-typescript";

export const SCHEMA_FILE = "src/schema.ts";

const HEADER = `/**
 * The types of sessanger's HTTP API, generated from the server's \`/openapi.json\` by
 * openapi-typescript: \`npm run generate\` rewrites this file, and the test
 * \`generated types match the server's OpenAPI document\` fails when it drifts. Do not edit.
 */

`;

export async function schemaSource(document: object): Promise<string> {
  // The document as JSON text: openapi-typescript reads an object as a path-less document.
  const ast = await openapiTS(JSON.stringify(document), { exportType: true, alphabetize: true, enumValues: true });
  return HEADER + astToString(ast);
}
