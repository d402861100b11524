import { describe, expect, it } from 'vitest';
import {
  ingestWorkflowDefinition,
  LAMBDA_SERVICE_RETRY,
  Placeholder,
  StateName,
  substitutePlaceholders,
  TRANSIENT_RETRY,
  type WorkflowDefinition,
} from '../../shared/workflow/definition.ts';

/** Every state of a definition, those in Map item processors included. */
const statesOf = (definition: WorkflowDefinition): [string, Record<string, unknown>][] =>
  Object.entries(definition.States).flatMap(([name, state]) => [
    [name, state],
    ...(state.Type === 'Map' ? statesOf(state.ItemProcessor) : []),
  ]);

describe('the workflow definition, as data', () => {
  const definition = ingestWorkflowDefinition();

  it('names its resources by placeholders only, each one a Placeholder', () => {
    const names = [...JSON.stringify(definition).matchAll(/\$\{(\w+)\}/g)].map(([, name]) => name);
    expect(new Set(names)).toEqual(new Set(Object.values(Placeholder)));
    expect(JSON.stringify(definition)).not.toMatch(/arn:aws:(lambda|sqs|states:[a-z])/);
  });

  it('gives every Lambda task the same retries, and every stage outside a Map the catch into RecordFailure', () => {
    const lambdaTasks = statesOf(definition).filter(
      ([, s]) => s.Type === 'Task' && String(s.Resource).includes('FunctionArn'),
    );
    expect(lambdaTasks.map(([name]) => name).sort()).toEqual(
      [
        StateName.download,
        StateName.ingest,
        StateName.planRebuild,
        StateName.planSilver,
        StateName.silverGroup,
        StateName.silverBucket,
        StateName.silver,
        StateName.planReconcile,
        StateName.reconcileItem,
        StateName.reconcileKeyBucket,
        StateName.reconcile,
        StateName.catchUpState,
        StateName.planFanOut,
      ].sort(),
    );
    for (const [name, task] of lambdaTasks) {
      expect((task.Retry as unknown[]).slice(0, 2), name).toEqual([LAMBDA_SERVICE_RETRY, TRANSIENT_RETRY]);
      const catches = (task.Catch ?? []) as { Next: string }[];
      // Inside a Map a state cannot reach RecordFailure: the Map catches for its items.
      const mapItems: string[] = [
        StateName.silverGroup,
        StateName.silverBucket,
        StateName.reconcileItem,
        StateName.reconcileKeyBucket,
      ];
      if (mapItems.includes(name)) expect(catches).toEqual([]);
      else expect(catches.at(-1)?.Next, name).toBe(StateName.recordFailure);
    }
  });

  it('routes a rebuild input to PlanRebuild, from which no path reaches Download or Ingest', () => {
    const states = definition.States;
    const firstChoice = states[StateName.hasSource].Choices[0];
    expect(firstChoice).toEqual({ Variable: '$.rebuild', IsPresent: true, Next: StateName.planRebuild });
    const nextOf = (state: Record<string, unknown>): string[] => [
      ...(typeof state.Next === 'string' ? [state.Next] : []),
      ...(typeof state.Default === 'string' ? [state.Default] : []),
      ...((state.Choices ?? []) as { Next: string }[]).map((c) => c.Next),
      ...((state.Catch ?? []) as { Next: string }[]).map((c) => c.Next),
    ];
    const reachable = new Set<string>();
    const visit = (name: string) => {
      if (reachable.has(name)) return;
      reachable.add(name);
      for (const next of nextOf(states[name])) visit(next);
    };
    visit(StateName.planRebuild);
    for (const state of [
      StateName.planSilver,
      StateName.reconcile,
      StateName.unchanged,
      StateName.succeeded,
    ]) {
      expect(reachable).toContain(state);
    }
    for (const state of [StateName.download, StateName.ingest, StateName.hasSilver]) {
      expect(reachable).not.toContain(state);
    }
    // The committed bronze run lands where Ingest's would, for the silver and reconcile states to read.
    expect(states[StateName.planRebuild].ResultPath).toBe('$.ingest');
    // A rebuilt table of contents does not fan out again: that choice comes before the dataset's.
    const fanOutChoices = states[StateName.hasFanOut].Choices as { Variable?: string; Next: string }[];
    const rebuildChoice = fanOutChoices.findIndex((c) => c.Variable === '$$.Execution.Input.rebuild');
    const tableChoice = fanOutChoices.findIndex((c) => c.Next === StateName.startFanOut);
    expect(rebuildChoice).toBeGreaterThanOrEqual(0);
    expect(fanOutChoices[rebuildChoice]!.Next).toBe(StateName.succeeded);
    expect(rebuildChoice).toBeLessThan(tableChoice);
  });

  it('takes the deployment options', () => {
    const tuned = ingestWorkflowDefinition({
      silverConcurrency: 3,
      fanOutConcurrency: 2,
      listedFileTimeoutSeconds: 60,
      timeoutSeconds: 3600,
    });
    expect(tuned.TimeoutSeconds).toBe(3600);
    expect(tuned.States[StateName.silverGroups].MaxConcurrency).toBe(3);
    expect(tuned.States[StateName.fanOut].MaxConcurrency).toBe(2);
    expect(
      tuned.States[StateName.fanOut].ItemProcessor.States[StateName.ingestListedFile].TimeoutSeconds,
    ).toBe(60);
  });

  it('substitutes every placeholder, and refuses to leave one without a value', () => {
    const values = Object.fromEntries(
      Object.values(Placeholder).map((name) => [name, `value-of-"${name}"`]),
    ) as Record<Placeholder, string>;
    const substituted = substitutePlaceholders(definition, values);
    expect(JSON.stringify(substituted)).not.toContain('${');
    expect(substituted.States[StateName.ingest].Resource).toBe('value-of-"IngestFunctionArn"');
    const { [Placeholder.failureQueueUrl]: _missing, ...partial } = values;
    expect(() => substitutePlaceholders(definition, partial as Record<Placeholder, string>)).toThrow(
      /\$\{FailureQueueUrl\}, which has no value/,
    );
  });
});
