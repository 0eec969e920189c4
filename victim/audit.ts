import { AppendLog } from './append-log.js';

/**
 * The audit log: one JSON line per /v1/label request, answered or refused, made durable (write +
 * fsync) before the response is sent, so a kill -9 can never lose a request somebody got an answer
 * to. It records who asked, how much and a hash of exactly what was sent — never the key or the
 * payload itself.
 */
export type AuditOutcome = 'answered' | 'rejected' | 'failed';

export interface AuditEntry {
  time: string;
  requestId: string;
  /** null when the caller could not be identified (missing or wrong key). */
  keyId: string | null;
  images: number;
  /** sha256 of the raw request body; null when the body was never read (refused before that). */
  payloadSha256: string | null;
  outcome: AuditOutcome;
  status: number;
  /** The error code of a refused request. */
  code?: string;
  durationMs: number;
}

/** What the HTTP layer needs; tests can pass an in-memory one. */
export interface AuditSink {
  record(entry: AuditEntry): Promise<void>;
}

export class FileAuditLog implements AuditSink {
  private constructor(private readonly log: AppendLog) {}

  /** Open for appending; a torn last line from a crash is kept (newline-terminated) as evidence. */
  static open(path: string): { audit: FileAuditLog; previous: number } {
    const { log, records } = AppendLog.open(path, { torn: 'keep' });
    return { audit: new FileAuditLog(log), previous: records.length };
  }

  get path(): string {
    return this.log.path;
  }

  record(entry: AuditEntry): Promise<void> {
    return this.log.append(entry);
  }

  close(): void {
    this.log.close();
  }
}

export class MemoryAuditLog implements AuditSink {
  readonly entries: AuditEntry[] = [];
  async record(entry: AuditEntry): Promise<void> {
    this.entries.push(entry);
  }
}
