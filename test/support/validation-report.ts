/**
 * The policy validation report `app.synth()` writes into the cloud assembly (`validation-report.json`): one entry per
 * validation plugin that found something (CDK's built-in CloudFormation validation, cdk-nag's AwsSolutions), each
 * with its violations. aws-cdk-lib leaves out a plugin that succeeded with no violation and no suppression, so a
 * clean synthesis writes `pluginReports: []`; a missing file means no plugin ran, which a check must not read as
 * "clean".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

const violationSchema = z.object({
  ruleName: z.string(),
  description: z.string(),
  severity: z.string(),
  violatingConstructs: z
    .array(
      z.object({
        constructPath: z.string(),
        cloudFormationResource: z.object({ logicalId: z.string() }).optional(),
      }),
    )
    .optional(),
});

const reportSchema = z.object({
  title: z.literal('Validation Report'),
  pluginReports: z.array(
    z.object({
      pluginName: z.string(),
      conclusion: z.enum(['success', 'failure']),
      violations: z.array(violationSchema),
    }),
  ),
});

export type ValidationReport = z.infer<typeof reportSchema>;

/** The file name aws-cdk-lib gives the report (cx-api's VALIDATION_REPORT_FILE). */
export const VALIDATION_REPORT_FILE = 'validation-report.json';

/** Reads and parses the report of a cloud assembly; throws, naming the file, when it is missing or malformed. */
export function readValidationReport(outdir: string): ValidationReport {
  const file = path.join(outdir, VALIDATION_REPORT_FILE);
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file} does not exist: no validation plugin ran at synthesis (builtinCloudFormationValidation off and no ` +
        'cdk-nag plugin registered?), so there is nothing to check.',
    );
  }
  const parsed = reportSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file} is not a validation report: ${parsed.error.message}`);
  return parsed.data;
}

/** Every violation of every plugin (any severity: a warning counts), as `plugin: rule (severity) description`. */
export function violationsOf(report: ValidationReport, pluginName?: string): string[] {
  return report.pluginReports
    .filter((r) => pluginName === undefined || r.pluginName === pluginName)
    .flatMap((r) =>
      r.violations.map((v) => {
        const where = (v.violatingConstructs ?? []).map((c) => c.constructPath).join(', ');
        return `${r.pluginName}: ${v.ruleName} (${v.severity}) ${v.description} at ${where}`;
      }),
    );
}
