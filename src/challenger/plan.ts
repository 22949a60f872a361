/**
 * The challenger at plan time (docs/adr/0020): the plan as the challenger alone would run it, and preflight's
 * problems with the challenger relabelled so each names the field a user changes.
 */
import type { Problem } from '../preflight/problems.js';
import { runLayout, type RunLayout } from '../runs/layout.js';
import type { Plan } from '../runs/types.js';
import { challengerSpecOf } from '../spec/challenger.js';

/** Folder inside the run prefix where a challenger model archive is extracted (the champion's is `model/`). */
export const CHALLENGER_MODEL_FOLDER = 'challenger-model/';

/**
 * The plan as the challenger alone would run it: the challenger spec (spec/challenger.ts) and the challenger model,
 * same run id, run date, input and shards. Undefined when the run has no challenger.
 */
export function challengerPlanOf(plan: Plan): Plan | undefined {
  const spec = challengerSpecOf(plan.spec);
  if (!spec || !plan.challenger) return undefined;
  const { challenger, ...rest } = plan;
  return { ...rest, spec, model: challenger };
}

/** Where the challenger's files of this run live: `<output.uri>/_challenger/` laid out like the champion's. */
export function challengerLayoutOf(plan: Plan): RunLayout | undefined {
  const challenger = challengerPlanOf(plan);
  return challenger && runLayout(challenger.spec.output.uri, plan.runId, plan.runDate);
}

/**
 * Preflight's problems for the challenger spec, named as the user wrote them: `model.registry` / `model.uri` are the
 * challenger's, `model.outputs` too when it has its own; problems with the shared inputs that the champion's
 * preflight reports already are dropped.
 */
export function challengerProblems(
  problems: readonly Problem[],
  ownOutputs: boolean,
  champion: readonly Problem[],
): Problem[] {
  const seen = new Set(champion.map((p) => `${p.code} ${p.field} ${p.value}`));
  return problems
    .filter((p) => !seen.has(`${p.code} ${p.field} ${p.value}`))
    .map((p) => {
      let field = p.field.replace(/^model\.(registry|uri)/, 'model.challenger.$1');
      if (ownOutputs) field = field.replace(/^model\.outputs/, 'model.challenger.outputs');
      else if (field.startsWith('model.outputs')) field = `${field} (applied to model.challenger)`;
      if (field.startsWith('model.inputs')) field = `${field} (fed to model.challenger)`;
      return { ...p, field };
    });
}
