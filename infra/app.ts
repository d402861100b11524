import path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError } from '../shared/errors.ts';
import { loadDeploymentConfig } from './config/deployment-config.ts';
import { REPO_ROOT } from './constructs/sluice-function.ts';
import { SluiceStack } from './stacks/sluice-stack.ts';

/**
 * The CDK app: one SluiceStack from the deployment config, `sluice.config.json` at the repository root
 * unless `-c config=FILE` names another. cdk-nag's AWS Solutions checks run on every synthesis; an
 * unacknowledged finding fails it.
 */
const app = new App();
const configPath = path.resolve(REPO_ROOT, String(app.node.tryGetContext('config') ?? 'sluice.config.json'));
try {
  const config = loadDeploymentConfig(configPath);
  new SluiceStack(app, config.stackName, {
    config,
    description: 'sluice: event-driven medallion ingestion (landing -> bronze -> silver -> reconciliation)',
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
} catch (error) {
  // A config mistake is the user's to fix: show the message, not a stack trace.
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exitCode = 1;
}
