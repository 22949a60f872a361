/**
 * The CDK app (`cdk synth`, `cdk deploy`; see cdk.json). Configuration comes from the `batchInfer` context key.
 * The stack is environment-agnostic (no account/region lookups), so `cdk synth` works offline; the account and
 * region are the deploying credentials'.
 */
import { App } from 'aws-cdk-lib';
import { BatchInferenceStack } from '../lib/batch-inference-stack.js';
import { loadDeployConfig, stackName } from '../lib/config.js';

const app = new App();
const config = loadDeployConfig(app);
new BatchInferenceStack(app, stackName(config), { config });
