/**
 * The kinds of target that are built, by name: adding one is its file and one line here (its name is
 * already in settings.ts's TARGET_KINDS, the flag's choices).
 */
import { TransferlabError } from '../../shared/errors.js';
import type { TargetKind } from './settings.js';
import type { TargetFactory } from './target.js';
import { transferlabTarget } from './transferlab.js';

const TARGETS: Partial<Record<TargetKind, TargetFactory>> = {
  transferlab: transferlabTarget,
};

export function targetFactory(kind: TargetKind): TargetFactory {
  const f = TARGETS[kind];
  if (!f) {
    const built = Object.keys(TARGETS).join(', ');
    throw new TransferlabError('target_unavailable', `target kind ${kind} is not available yet in this version; built: ${built}`);
  }
  return f;
}
