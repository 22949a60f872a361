/** The `batch-infer` CLI entry: everything lives in src/cli/main.ts. */
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
