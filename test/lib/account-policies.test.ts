/**
 * The AWS Control Tower proactive controls (cdk-validator-cfnguard, offline) over the deployed stack: synthesis
 * passes with the acknowledgements of lib/account-policies.ts, every acknowledgement is still needed, and without
 * them the controls report exactly the acknowledged rules.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from '@jest/globals';
import { ACCOUNT_POLICY_ACKNOWLEDGEMENTS, addAccountPolicyChecks } from '../../lib/account-policies.js';
import { addDeployment } from '../../lib/deployment.js';
import { cdkJsonContext } from './helpers.js';

function synth(options: { readonly acknowledged: boolean }): { ok: boolean; rules: string[] } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-guard-'));
  const context = cdkJsonContext();
  context['aws:cdk:bundling-stacks'] = [];
  context['@aws-cdk/core:validationReportJson'] = true;
  const app = new App({ outdir, context, analyticsReporting: false });
  try {
    if (options.acknowledged) addDeployment(app, { nag: false, accountPolicies: true });
    else {
      addDeployment(app, { nag: false });
      addAccountPolicyChecks(app);
    }
    let ok = true;
    try {
      app.synth();
    } catch {
      ok = false;
    }
    const reportFile = path.join(outdir, 'validation-report.json');
    const report = fs.existsSync(reportFile)
      ? (JSON.parse(fs.readFileSync(reportFile, 'utf8')) as {
          pluginReports: { pluginName: string; violations: { ruleName: string }[] }[];
        })
      : { pluginReports: [] };
    const guard = report.pluginReports.filter((r) => r.pluginName === 'cdk-validator-cfnguard');
    return { ok, rules: [...new Set(guard.flatMap((r) => r.violations.map((v) => v.ruleName)))].sort() };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

describe('AWS Control Tower proactive controls', () => {
  it('report exactly the acknowledged rules when nothing is acknowledged (each acknowledgement is still needed)', () => {
    const { ok, rules } = synth({ acknowledged: false });
    expect(ok).toBe(false);
    expect(rules).toEqual(Object.keys(ACCOUNT_POLICY_ACKNOWLEDGEMENTS).sort());
  }, 180_000);

  it('pass with the acknowledgements, each with a reason naming its control', () => {
    for (const [rule, reason] of Object.entries(ACCOUNT_POLICY_ACKNOWLEDGEMENTS)) {
      expect(`${rule}: ${reason}`).toMatch(/: \[CT\.[A-Z0-9]+\.PR\.\d+\] .{40,}/);
    }
    expect(synth({ acknowledged: true })).toEqual({ ok: true, rules: [] });
  }, 180_000);
});
