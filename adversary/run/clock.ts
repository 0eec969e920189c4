import { z } from 'zod';
import type { RunLog, RunStore } from './store.js';

/**
 * A run's working time over all its sessions. A run stopped by a crash, a spent budget or Ctrl-C
 * and resumed later is one run: its results must say what the whole of it took, not what the last
 * process did. Each process is one session; it appends its elapsed seconds (and seconds per phase)
 * to sessions.jsonl in the run store at every point where work is kept (a step, a round, a progress
 * line) and when it ends, finished or stopped by an error. A process killed outright loses at most
 * the time since its last record — time whose work was lost too, and is done (and counted) again by
 * the next session.
 */
export const SESSIONS_FILE = 'sessions.jsonl';

const sessionRecord = z.strictObject({
  /** When the session began (ISO time): the key that tells sessions apart. */
  session: z.string(),
  seconds: z.number().nonnegative(),
  phases: z.record(z.string(), z.number().nonnegative()),
});
type SessionRecord = z.infer<typeof sessionRecord>;

export interface RunClock {
  /** Seconds of all earlier sessions plus this one so far. */
  totalSeconds(): number;
  /** Per phase, the earlier sessions' seconds plus `current` (this session's own). */
  totalPhases<P extends Record<string, number>>(current: P): P;
  /** Records this session's time so far (and its phases), fsync'd, for a later session to add up. */
  tick(phases?: Record<string, number>): void;
  close(): void;
}

/** Starts this session's clock, reading what the earlier sessions recorded. */
export function startRunClock(store: RunStore): RunClock {
  const started = performance.now();
  const session = new Date().toISOString();
  const opened = store.openLog(SESSIONS_FILE, { torn: 'drop', corruptHint: 'move it aside (it only records how long earlier sessions took)' });
  // A session's records are cumulative: its last one is its total.
  const last = new Map<string, SessionRecord>();
  opened.records.forEach((r, i) => {
    const parsed = sessionRecord.safeParse(r);
    // A line this module did not write is skipped rather than fatal: it only feeds a duration.
    if (parsed.success) last.set(parsed.data.session, parsed.data);
    else console.warn(`${store.where(SESSIONS_FILE)}: line ${opened.lines[i]} is not a session record; skipped`);
  });
  const earlier = [...last.values()].filter((r) => r.session !== session);
  const priorSeconds = earlier.reduce((sum, r) => sum + r.seconds, 0);
  const priorPhases: Record<string, number> = {};
  for (const r of earlier) for (const [k, s] of Object.entries(r.phases)) priorPhases[k] = (priorPhases[k] ?? 0) + s;
  const log: RunLog = opened.log;
  const own = () => (performance.now() - started) / 1000;
  return {
    totalSeconds: () => priorSeconds + own(),
    totalPhases: (current) => {
      const out: Record<string, number> = { ...current };
      for (const [k, s] of Object.entries(priorPhases)) out[k] = (out[k] ?? 0) + s;
      return out as typeof current;
    },
    tick: (phases = {}) => log.appendNow([{ session, seconds: own(), phases: { ...phases } }]),
    close: () => log.close(),
  };
}
