import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Express, Request, RequestHandler, Response } from 'express';
import { TransferlabError } from '../../shared/errors.js';
import type { DetectorView, ExtractionWatch } from '../detect/detection.js';
import { MIN_KEY_LENGTH, bearerToken } from '../store/keys.js';

/**
 * The operator's endpoints, behind their own key (never one of the clients' keys, so a watched
 * client can never read what the detector concluded about it):
 *   GET    /v1/admin/detections           detector settings, detections, per-client state
 *   DELETE /v1/admin/detections/{client}  lift a client's flag and block (audited as block_lifted)
 * The admin key comes from --admin-key-file: a file holding the secret (≥ 16 characters) on its
 * first line. Without it the admin routes do not exist (404), like any unknown route.
 */
export const ADMIN_DETECTIONS_PATH = '/v1/admin/detections';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class AdminKey {
  private constructor(private readonly digest: Buffer) {}

  static fromSecret(secret: string): AdminKey {
    if (secret.length < MIN_KEY_LENGTH) {
      throw new TransferlabError('invalid_admin_key', `the admin key must be at least ${MIN_KEY_LENGTH} characters`);
    }
    return new AdminKey(digest(secret));
  }

  static fromFile(path: string): AdminKey {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new TransferlabError('invalid_admin_key', `cannot read admin key file ${path}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`);
    }
    const secret = text.split(/\r?\n/)[0].trim();
    if (secret.length < MIN_KEY_LENGTH) {
      throw new TransferlabError('invalid_admin_key', `admin key file ${path} must hold a key of at least ${MIN_KEY_LENGTH} characters on its first line`);
    }
    return new AdminKey(digest(secret));
  }

  /** Throws 401 unless the request carries this admin key (compared in constant time). */
  authenticate(req: Request): void {
    const token = bearerToken(req.rawHeaders);
    if (token === undefined) throw new TransferlabError('missing_api_key', 'the admin endpoints need the admin key: send Authorization: Bearer <admin key>', 401);
    if (!timingSafeEqual(digest(token), this.digest)) {
      throw new TransferlabError('invalid_api_key', 'this is not the admin key', 401);
    }
  }
}

export interface AdminOptions {
  key: AdminKey;
  watch?: ExtractionWatch;
}

/** The JSON for GET /v1/admin/detections. */
export async function detectionsView(opts: AdminOptions): Promise<DetectorView> {
  return (await opts.watch?.view()) ?? { detector: null, detections: [], clients: [] };
}

/** DELETE /v1/admin/detections/{client}. */
export async function liftBlock(opts: AdminOptions, client: string): Promise<{ lifted: string }> {
  if (!opts.watch || !(await opts.watch.lift(client))) {
    throw new TransferlabError('not_found', `no detection for client ${JSON.stringify(client.slice(0, 100))}; see GET ${ADMIN_DETECTIONS_PATH}`, 404);
  }
  return { lifted: client };
}

/** Register the admin routes; `fail` answers with an API error, `notAllowed` builds a 405 handler. */
export function mountAdminRoutes(app: Express, opts: AdminOptions, fail: (res: Response, e: unknown) => void, notAllowed: (allow: string) => RequestHandler): void {
  app.get(ADMIN_DETECTIONS_PATH, async (req, res) => {
    try {
      opts.key.authenticate(req);
      res.json(await detectionsView(opts));
    } catch (e) {
      fail(res, e);
    }
  });
  app.all(ADMIN_DETECTIONS_PATH, notAllowed('GET, HEAD'));
  app.delete(`${ADMIN_DETECTIONS_PATH}/:client`, async (req, res) => {
    try {
      opts.key.authenticate(req);
      res.json(await liftBlock(opts, String(req.params.client)));
    } catch (e) {
      fail(res, e);
    }
  });
  app.all(`${ADMIN_DETECTIONS_PATH}/:client`, notAllowed('DELETE'));
}
