// Runs GraphQL Code Generator (@graphql-codegen/cli, with its `typescript`
// and `typescript-operations` plugins) against a running tagsmith, as a
// frontend team would:
//
//   node tests/browser/codegen.mjs GRAPHQL_URL OUTPUT_FILE
//
// The schema comes from GRAPHQL_URL by introspection (no key, as codegen
// sends it by default); the operations in operations/ are checked against it
// and typed. Writes the TypeScript to OUTPUT_FILE. Exit status 0 when the
// file was written, 1 when codegen failed (its error on standard error).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '@graphql-codegen/cli';

const [url, output] = process.argv.slice(2);
if (!url || !output) {
  console.error('usage: node codegen.mjs GRAPHQL_URL OUTPUT_FILE');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
// Plugins are found from the working directory: this package's.
process.chdir(here);

try {
  await generate(
    {
      schema: url,
      documents: [path.join(here, 'operations/*.graphql')],
      generates: { [output]: { plugins: ['typescript', 'typescript-operations'] } },
      silent: true,
    },
    true,
  );
} catch (error) {
  console.error(`codegen failed: ${error?.message ?? error}`);
  for (const detail of error?.errors ?? []) console.error(String(detail?.message ?? detail));
  process.exit(1);
}
