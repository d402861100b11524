/**
 * An invocation that failed as Lambda's runtime reports it: its `name` is the Step Functions error
 * (`Sandbox.Timedout`, `ENOSPC`), or the class name of the error the handler threw in the invocation's
 * own process under `--lambda-limits` (the class itself stays in that process; its name travels).
 */
export class LambdaRuntimeError extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
}
