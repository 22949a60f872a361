/**
 * The CDK app (`cdk synth`, `cdk deploy`; see cdk.json). Everything it deploys is decided by the deploy configuration
 * (context `batchInfer`) and the pipelines of its `pipelinesDir`; see lib/deployment.ts. The stack is
 * environment-agnostic (no account or region lookups), so `cdk synth` works offline; the account and region are the
 * deploying credentials'.
 */
import { App } from 'aws-cdk-lib';
import { addDeployment } from '../lib/deployment.js';

addDeployment(new App());
