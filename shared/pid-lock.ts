import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A lock file holding its owner's pid. A lock whose owner has died is taken over, so a crash
 * never needs a hand-deleted file; a live owner keeps it.
 *
 * "Died" includes a zombie: where nothing reaps a killed process (a container whose PID 1 does not
 * wait for its children), it stays in the process table and kill(pid, 0) still succeeds, yet it
 * holds nothing and will never run again. Linux shows that state in /proc/<pid>/stat.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return processState(pid) !== 'Z';
}

/**
 * The one-letter state of a process from /proc/<pid>/stat (R, S, D, Z, …), or undefined where there
 * is no /proc (not Linux) or the process is gone. The name field may hold spaces and parentheses,
 * so the state is read after the last ')'.
 */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\s*(\S)/.exec(stat.slice(stat.lastIndexOf(')') + 1))?.[1];
  } catch {
    return undefined;
  }
}

/** Take the lock, or return the pid of the live process that holds it. Other I/O errors throw. */
export function tryPidLock(path: string): { taken: true } | { taken: false; owner: number } {
  mkdirSync(dirname(path), { recursive: true });
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return { taken: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) return { taken: false, owner };
      rmSync(path, { force: true });
    }
  }
}
