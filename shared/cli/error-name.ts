import { PipelineError } from '../errors.ts';
import { LambdaRuntimeError } from '../pipeline/lambda-runtime-error.ts';

/**
 * The name a failure is reported under (stderr, `--json`): sluice's own error class, also when the error
 * was thrown in an invocation's own process under `--lambda-limits`, which hands back its name only
 * (`Sandbox.Timedout`, `ReconciliationError`); `Error` for anything else.
 */
export function errorName(error: unknown): string {
  return error instanceof PipelineError || error instanceof LambdaRuntimeError ? error.name : 'Error';
}
