/**
 * The `transferlab` target (the default): this project's victim API, through the contract's client
 * (adversary/oracle/client.ts) exactly as before targets existed — /v1/info, /v1/label with an
 * Idempotency-Key, /v1/budget.
 */
import { TransferlabError } from '../../shared/errors.js';
import { VictimHttp } from '../oracle/client.js';
import type { TargetFactory } from './target.js';

export const transferlabTarget: TargetFactory = (settings, ctx) => {
  // This API describes itself: the settings for servers that do not would be silently ignored here.
  const foreign = (['modelName', 'modelVersion', 'layout', 'outputName', 'token', 'inputShape', 'classes'] as const).filter((k) => settings[k] !== undefined);
  if (foreign.length) {
    throw new TransferlabError('invalid_config', `${foreign.join(', ')} only apply to other targets; the transferlab victim at ${ctx.url} describes its model itself (choose --target-kind oip, tfserving, … to use them)`);
  }
  const victim = new VictimHttp(ctx.url, ctx);
  // A victim whose policy gives probabilities is asked through /v1/predict (labels and scores; the oracle
  // drops the scores in a label threat model); a label-only one through /v1/label.
  let send = victim.send(ctx.format, ctx.scope);
  return {
    kind: 'transferlab',
    url: ctx.url,
    describe: async () => {
      const info = await victim.info();
      if (info.output !== 'label') send = victim.sendPredict(ctx.format, ctx.scope, info.classes);
      return settings.maxBatch ? { ...info, maxBatch: Math.min(info.maxBatch, settings.maxBatch) } : info;
    },
    send: (body, count, purpose) => send(body, count, purpose),
    budget: () => victim.budget(),
    close: () => victim.close(),
  };
};
