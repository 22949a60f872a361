/**
 * A jest reporter that makes a skipped test visible: the run fails when any test is skipped (or left as todo) unless
 * test/skips.json lists it by full name with the reason. Without it a guard such as `it.skip` on a missing tool turns
 * a real check into a silent pass.
 */
import { readFileSync } from 'node:fs';

const listed = new Set(
  JSON.parse(readFileSync(new URL('../skips.json', import.meta.url), 'utf8')).skips.map((skip) => skip.test),
);

export default class SkipReporter {
  #unlisted = [];

  onTestResult(_test, result) {
    for (const assertion of result.testResults) {
      if (assertion.status === 'passed' || assertion.status === 'failed') continue;
      if (!listed.has(assertion.fullName)) {
        this.#unlisted.push(`${result.testFilePath}: "${assertion.fullName}" (${assertion.status})`);
      }
    }
  }

  onRunComplete() {
    if (this.#unlisted.length === 0) return;
    process.stderr.write(
      `\nTests skipped without a reason in test/skips.json (list them there, or make them run):\n` +
        this.#unlisted.map((line) => `  ${line}\n`).join(''),
    );
  }

  getLastError() {
    return this.#unlisted.length > 0
      ? new Error(`${this.#unlisted.length} unlisted skipped test(s)`)
      : undefined;
  }
}
