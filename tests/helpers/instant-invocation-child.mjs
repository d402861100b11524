// An invocation's process (shared/pipeline/lambda-limits.ts's protocol) that returns at once and exits
// as soon as its result is sent, as the real one does: tests of the run's side of the protocol.
process.on('message', (message) => {
  if (message.type !== 'invoke') return;
  process.send({ type: 'requests', requests: { tier1: 0, tier2: 0 } });
  process.send({ type: 'result', value: { echoed: message.spec.event } }, undefined, {}, () =>
    process.exit(0),
  );
});
process.send({ type: 'ready' });
