import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import type { AuditEntry } from '../victim/store/audit.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, exited, keyedVictimFiles, labelUint8, ledgerTotal, readJsonl, startKeyedVictim, type TestVictim } from './victim-client.js';

/**
 * Faults found by probing the victim from outside, each reproduced as an outside client or an
 * operator would meet it: raw bytes over a real socket, real restarts, a real crash, a real zombie.
 */
const KEYS = Object.fromEntries(['alice', 'bob', 'carol', 'dave', 'erin'].map((id) => [id, `${id}-secret-0123456789abcdef`]));
const { alice: ALICE, bob: BOB, carol: CAROL, dave: DAVE, erin: ERIN } = KEYS;
const pixels = loadMnist('test').pixels;
let modelDir: string;
let backend: string;
let root: string;
const running = new Set<TestVictim>();
const leftovers: ChildProcess[] = [];

beforeAll(async () => {
  modelDir = await ensureTestVictim();
  backend = (await initBackend()).backend;
  root = mkdtempSync(join(tmpdir(), 'transferlab-victim-faults-'));
});

afterAll(async () => {
  await Promise.all([...running].map((v) => v.stop()));
  for (const p of leftovers) p.kill('SIGKILL');
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A fresh folder; `start` runs a real victim with its keys file, ledger and audit log there. */
function service(name: string) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    ...keyedVictimFiles(dir),
    async start(): Promise<TestVictim> {
      const v = await startKeyedVictim({ dir, model: modelDir, backend, keys: KEYS, budget: 5000, rateLimit: 0 });
      running.add(v);
      return v;
    },
    async stop(v: TestVictim): Promise<number | null> {
      running.delete(v);
      return v.stop();
    },
  };
}

/** Write `bytes` on one fresh connection and collect everything the server sends until it closes. */
function exchange(url: string, bytes: Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error(`no close within 20 s; got:\n${text.slice(0, 500)}`)));
  });
}

function labelRequest(images: number, headers: string[]): Buffer {
  const body = Buffer.from(pixels.subarray(0, images * IMAGE_SIZE));
  const head = ['POST /v1/label HTTP/1.1', 'Host: victim', 'Content-Type: application/octet-stream', `Content-Length: ${body.length}`, ...headers, '', ''].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Status lines, X-Request-Id headers and JSON bodies of the HTTP responses in `text`, in order. */
function responses(text: string): { status: number; requestId?: string; body: { labels?: number[]; error?: { code: string } } }[] {
  const out = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    const head = rest.slice(0, headEnd);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    const body = rest.slice(headEnd + 4, headEnd + 4 + length);
    out.push({ status: Number(head.slice(9, 12)), requestId: /\r\nx-request-id: *(\S+)/i.exec(head)?.[1], body: body ? JSON.parse(body) : {} });
    rest = rest.slice(headEnd + 4 + length);
  }
  return out;
}

describe('victim faults, from outside', () => {
  // One victim for the HTTP-edge cases (each with its own key), restarted by the idempotency case.
  let edge: ReturnType<typeof service>;
  let edgeVictim: TestVictim | undefined;
  const edgeUp = async () => {
    edge ??= service('edge');
    return (edgeVictim ??= await edge.start());
  };

  it('a valid request pipelined with malformed bytes gets its labels, then a 400; charged and audited exactly once', async () => {
    const v = await edgeUp();
    const svc = edge;
    const text = await exchange(v.url, Buffer.concat([labelRequest(3, [`Authorization: Bearer ${ALICE}`]), Buffer.from('NOT HTTP AT ALL\r\n\r\n')]));
    const got = responses(text);
    expect(got.map((r) => r.status)).toEqual([200, 400]);
    expect(got[0].body.labels).toHaveLength(3);
    expect(got[1].body.error?.code).toBe('bad_request');
    // What was charged and audited as answered is exactly what the client received.
    const answered = readJsonl<AuditEntry>(svc.audit).filter((e) => e.keyId === 'alice');
    expect(answered.map((e) => [e.outcome, e.requestId, e.images])).toEqual([['answered', got[0].requestId, 3]]);
    expect(ledgerTotal(svc.ledger, 'alice')).toBe(3);
  });

  it('a client that hangs up while its batch is labelled is not charged (audited as abandoned)', async () => {
    const v = await edgeUp();
    const svc = edge;
    const { hostname, port } = new URL(v.url);
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(Number(port), hostname, () => socket.write(labelRequest(300, [`Authorization: Bearer ${CAROL}`]), () => socket.destroy()));
        socket.on('close', () => resolve());
        socket.on('error', reject);
      });
    }
    // The hang-ups reach the victim before their batches are labelled; their audit lines follow.
    const carols = () => readJsonl<AuditEntry>(svc.audit).filter((e) => e.keyId === 'carol');
    for (let i = 0; i < 400 && carols().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(carols().map((e) => [e.outcome, e.status, e.code])).toEqual(Array(3).fill(['abandoned', 499, 'client_disconnected']));
    expect(ledgerTotal(svc.ledger, 'carol')).toBe(0);
  });

  it('refuses a request with two Authorization headers (400) and charges neither key', async () => {
    const v = await edgeUp();
    const svc = edge;
    for (const order of [[DAVE, BOB], [BOB, DAVE]]) {
      const text = await exchange(v.url, labelRequest(2, [...order.map((k) => `Authorization: Bearer ${k}`), 'Connection: close']));
      expect(responses(text).map((r) => [r.status, r.body.error?.code])).toEqual([[400, 'bad_request']]);
    }
    // One header still works, and is charged to its own key.
    const ok = await labelUint8(v.url, pixels.subarray(0, IMAGE_SIZE), bearer(BOB));
    expect([ok.status, ok.body.budget?.used]).toEqual([200, 1]);
    expect([ledgerTotal(svc.ledger, 'dave'), ledgerTotal(svc.ledger, 'bob')]).toEqual([0, 1]);
    const refused = readJsonl<AuditEntry>(svc.audit).filter((e) => e.outcome === 'rejected');
    expect(refused.map((e) => [e.status, e.keyId])).toEqual([[400, null], [400, null]]);
  });

  it('an Idempotency-Key is remembered across SIGTERM and a restart: the repeat is not charged again', async () => {
    let v = await edgeUp();
    const svc = edge;
    const batch = pixels.subarray(10 * IMAGE_SIZE, 14 * IMAGE_SIZE);
    const headers = { ...bearer(ERIN), 'Idempotency-Key': 'campaign-batch-17' };
    const first = await labelUint8(v.url, batch, headers);
    expect([first.status, first.body.budget?.used]).toEqual([200, 4]);
    process.kill(v.pid, 'SIGTERM');
    expect(await exited(v)).toBe(0);
    running.delete(v);
    v = await svc.start();
    edgeVictim = v; // the next case crashes it
    const repeat = await labelUint8(v.url, batch, headers);
    expect(repeat.status).toBe(200);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.body).toEqual(first.body);
    expect(ledgerTotal(svc.ledger, 'erin')).toBe(4);
  });

  it('a torn audit-log tail from a crash: start, stop, start and start again all succeed, the fragment kept once', async () => {
    let v = await edgeUp();
    const svc = edge;
    edgeVictim = undefined;
    process.kill(v.pid, 'SIGKILL'); // the crash …
    await svc.stop(v);
    const fragment = '{"time":"2026-12-01T10:00:00.000Z","requestId":"0b5e';
    appendFileSync(svc.audit, fragment); // … landed in the middle of an audit write
    for (let i = 0; i < 3; i++) {
      v = await svc.start();
      expect((await labelUint8(v.url, pixels.subarray(0, IMAGE_SIZE), bearer(DAVE))).status).toBe(200);
      expect(await svc.stop(v)).toBe(0);
    }
    const lines = readFileSync(svc.audit, 'utf8').trimEnd().split('\n');
    const records = lines.map((l) => JSON.parse(l) as { event?: string; fragment?: string; outcome?: string; keyId?: string });
    expect(records.filter((r) => r.event === 'torn_tail').map((r) => r.fragment)).toEqual([fragment]);
    expect(records.filter((r) => r.outcome === 'answered' && r.keyId === 'dave')).toHaveLength(3);
  });

  // Zombies are told apart through /proc (Linux, as on CI); elsewhere kill(pid, 0) is all there is.
  it.skipIf(!existsSync('/proc/self/stat'))('takes over a ledger lock whose holder is a zombie (killed, never reaped)', async () => {
    const svc = service('zombie');
    const lock = `${svc.ledger}.lock`;
    // The inner shell writes its pid into the lock and SIGKILLs itself; its parent has exec'd into
    // `sleep`, which never waits for children, so the dead holder stays a zombie.
    const parent = spawn('sh', ['-c', 'sh -c \'echo $$ > "$1"; kill -KILL $$\' holder "$0" & exec sleep 60', lock], { stdio: 'ignore' });
    leftovers.push(parent);
    let holder = 0;
    for (let i = 0; i < 100 && !(holder && state(holder) === 'Z'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      holder = existsSync(lock) ? Number(readFileSync(lock, 'utf8').trim()) : 0;
    }
    expect(state(holder)).toBe('Z');
    expect(() => process.kill(holder, 0)).not.toThrow(); // why kill(pid, 0) alone is fooled
    const v = await svc.start();
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(v.pid));
    await svc.stop(v);
    parent.kill('SIGKILL');
  });
});

function state(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}
