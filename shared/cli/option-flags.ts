/**
 * Errors raised below the CLI name the option that would change the outcome as a config or library user
 * sets it (`set allowLoopback to permit it`): the same stages run on AWS, where there is no command line.
 * A CLI user sets those options with flags, so every message the CLI prints goes through `inCliTerms`,
 * which names the flag instead.
 */

/** Each option a stage's message may name, and the `sluice run` flag that sets it. */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  allowInsecureHttp: '--allow-http',
  allowLoopback: '--allow-loopback',
  allowPrivate: '--allow-private',
  quarantineRateThreshold: '--quarantine-threshold',
};

const OPTION_PHRASE = new RegExp(`\\bset (${Object.keys(OPTION_FLAGS).join('|')})( to (?=\\d))?`, 'g');

/** `set allowLoopback` → `run with --allow-loopback`; `set quarantineRateThreshold to 0.5` → `run with --quarantine-threshold 0.5`. */
export function inCliTerms(message: string): string {
  return message.replace(
    OPTION_PHRASE,
    (_, option: string, to?: string) => `run with ${OPTION_FLAGS[option]}${to ? ' ' : ''}`,
  );
}
