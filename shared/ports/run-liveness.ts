/**
 * Whether the run that holds a source's lease has ended. A lease names its holder (on AWS the Step
 * Functions execution ARN); a holder that ended without releasing it (failed, timed out, aborted) would
 * otherwise keep its source busy until the lease expires. Locally the lease's process id answers the same
 * question (shared/lake/source-lease.ts).
 */
export interface RunLiveness {
  /**
   * True only when the holder is known to have ended. Unknown holders, and failures to ask, answer false:
   * the lease then binds until it expires, which is always safe.
   */
  hasEnded(holder: string): Promise<boolean>;
}
