/**
 * What the queue's commands need before any queue is opened (their flags' defaults, reading a status):
 * kept apart from queue.ts so that loading the `transferlab`/adversary command does not load BullMQ and
 * ioredis (~0.3–0.7 s of start-up) for the commands that never touch a queue.
 */
export interface RetryPolicy {
  attempts: number;
  backoffSeconds: number;
}

export const RETRY_DEFAULTS: RetryPolicy = { attempts: 3, backoffSeconds: 10 };

/** A job's status (queue.ts JobStatus) is final: nothing will change it without a retry by hand. */
export const isSettled = (s: { state: string }) => s.state === 'completed' || s.state === 'failed';
