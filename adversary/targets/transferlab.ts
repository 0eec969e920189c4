/**
 * The `transferlab` target (the default): this project's victim API, through the contract's client
 * (adversary/oracle/client.ts) exactly as before targets existed — /v1/info, /v1/label with an
 * Idempotency-Key, /v1/budget; and /v1/predict when the campaign's threat model asks for scores.
 */
import { TransferlabError } from '../../shared/errors.js';
import { VictimHttp } from '../oracle/client.js';
import type { SendBatch } from '../oracle/core.js';
import type { TargetFactory } from './target.js';

export const transferlabTarget: TargetFactory = (settings, ctx) => {
  // This API describes itself: the settings for servers that do not would be silently ignored here.
  const foreign = (['modelName', 'modelVersion', 'layout', 'outputName', 'token', 'inputShape', 'classes', 'classNames', 'targetFile'] as const).filter((k) => settings[k] !== undefined);
  if (foreign.length) {
    throw new TransferlabError('invalid_config', `${foreign.join(', ')} only apply to other targets; the transferlab victim at ${ctx.url} describes its model itself (choose --target oip, tfserving, … to use them)`);
  }
  const victim = new VictimHttp(ctx.url, ctx);
  const label = victim.send(ctx.format, ctx.scope);
  // A topk or scores campaign asks /v1/predict, whose answer carries what the victim's output policy
  // gives; a label campaign keeps to /v1/label whatever the victim could give.
  let predict: SendBatch | undefined;
  const scoring = ctx.threat !== undefined && ctx.threat !== 'label';
  return {
    kind: 'transferlab',
    url: ctx.url,
    describe: async () => {
      const info = await victim.info();
      if (scoring) predict = victim.sendPredict(ctx.format, ctx.scope, info.classes);
      return settings.maxBatch ? { ...info, maxBatch: Math.min(info.maxBatch, settings.maxBatch) } : info;
    },
    send: (body, count, purpose) => (predict ?? label)(body, count, purpose),
    // With Sybil keys (ctx.apiKeys, passed through to the client) the budget is every key's, summed.
    budget: () => victim.budgets(),
    keys: ctx.apiKeys?.length || 1,
    close: () => victim.close(),
  };
};
