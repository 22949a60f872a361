/**
 * A deployment, as `cdk synth` builds it: the validated configuration of the app's context, the validated pipelines
 * of its folder, the stack, and the cdk-nag checks. bin/app.ts calls this and nothing else; the tests call it too, so
 * they synthesize exactly what is deployed.
 */
import { withStackPrices } from './pipeline-prices.js';
import type { App } from 'aws-cdk-lib';
import { acknowledgeAccountPolicies, addAccountPolicyChecks } from './account-policies.js';
import { BatchInferenceStack } from './batch-inference-stack.js';
import { loadDeployConfig, stackName } from './config.js';
import { addNagChecks } from './nag.js';
import { loadPipelines } from './pipelines.js';

export interface DeploymentOptions {
  /** Run the cdk-nag AwsSolutions checks at synthesis (unacknowledged findings fail it). @default true */
  readonly nag?: boolean;
  /**
   * Run the AWS Control Tower proactive controls at synthesis (lib/account-policies.ts; unacknowledged findings fail
   * it), for accounts that enforce them.
   *
   * @default false
   */
  readonly accountPolicies?: boolean;
}

/** Adds the deployment's stack to `app`. Throws, naming the problem, when the configuration or a pipeline is invalid. */
export function addDeployment(app: App, options: DeploymentOptions = {}): BatchInferenceStack {
  const { config, pipelinesDir } = loadDeployConfig(app);
  const stack = new BatchInferenceStack(app, stackName(config), {
    config,
    pipelines: withStackPrices(loadPipelines(pipelinesDir), config.prices),
  });
  if (options.nag ?? true) addNagChecks(app);
  if (options.accountPolicies ?? false) {
    addAccountPolicyChecks(app);
    acknowledgeAccountPolicies(stack);
  }
  return stack;
}
