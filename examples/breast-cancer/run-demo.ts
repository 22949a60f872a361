/**
 * `npm run demo`: builds a large input from the shipped dataset (1,000,000 records in 8 CSV files, with a few
 * deliberately broken records) and runs it through the full local pipeline, exactly as
 * `batch-infer run examples/breast-cancer/demo.yaml` would.
 *
 *   npm run demo -- [--records N] [--files N] [--workers N]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { main } from '../../src/cli/main.js';
import { fmt } from '../../src/local/progress.js';
import {
  DEFAULT_DEMO_DIR,
  DEFAULT_DEMO_FILES,
  DEFAULT_DEMO_RECORDS,
  EXAMPLE_DIR,
  makeDemoInput,
} from './demo.js';

const { values } = parseArgs({
  options: { records: { type: 'string' }, files: { type: 'string' }, workers: { type: 'string' } },
});
const records = Number(values.records ?? DEFAULT_DEMO_RECORDS);
const files = Number(values.files ?? DEFAULT_DEMO_FILES);
if (!Number.isInteger(records) || records < 1 || !Number.isInteger(files) || files < 1 || files > records) {
  process.stderr.write('--records and --files must be positive integers with files <= records\n');
  process.exit(2);
}

// The input is deterministic, so it is made once and reused while the parameters stay the same.
const stampFile = path.join(path.dirname(DEFAULT_DEMO_DIR), 'demo-input.json');
const stamp = JSON.stringify({ records, files, version: 1 });
if (!existsSync(stampFile) || readFileSync(stampFile, 'utf8') !== stamp) {
  process.stderr.write(`Generating the demo input: ${fmt(records)} records in ${files} CSV files...\n`);
  const t = performance.now();
  const input = await makeDemoInput({ dir: DEFAULT_DEMO_DIR, records, files });
  writeFileSync(stampFile, stamp);
  process.stderr.write(
    `  ${fmt(input.records)} records, ${fmt(Math.round(input.bytes / 2 ** 20))} MiB, ${input.badRecords} deliberately broken, ` +
      `in ${((performance.now() - t) / 1000).toFixed(1)} s\n\n`,
  );
} else {
  process.stderr.write(`Reusing the demo input in ${path.relative(process.cwd(), DEFAULT_DEMO_DIR)}\n\n`);
}

const spec = path.relative(process.cwd(), path.join(EXAMPLE_DIR, 'demo.yaml'));
process.stderr.write(`$ batch-infer run ${spec}\n`);
process.exitCode = await main(['run', spec, ...(values.workers ? ['--workers', values.workers] : [])]);
