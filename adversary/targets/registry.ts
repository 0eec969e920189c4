/**
 * The kinds of target that are built, by name: adding one is its file and one line here (its name is
 * already in settings.ts's TARGET_KINDS, the flag's choices).
 */
import { TransferlabError } from '../../shared/errors.js';
import { oipTarget } from './oip.js';
import type { TargetKind } from './settings.js';
import type { TargetFactory } from './target.js';
import { tfservingTarget } from './tfserving.js';
import { transferlabTarget } from './transferlab.js';
import { torchserveTarget } from './torchserve.js';
import { httpTarget } from './http-target.js';
import { moduleTarget } from './module-target.js';

const TARGETS: Partial<Record<TargetKind, TargetFactory>> = {
  transferlab: transferlabTarget,
  oip: oipTarget,
  tfserving: tfservingTarget,
  torchserve: torchserveTarget,
  http: httpTarget,
  module: moduleTarget,
};

export function targetFactory(kind: TargetKind): TargetFactory {
  const f = TARGETS[kind];
  if (!f) {
    const built = Object.keys(TARGETS).join(', ');
    throw new TransferlabError('target_unavailable', `target kind ${kind} is not available yet in this version; built: ${built}`);
  }
  return f;
}
