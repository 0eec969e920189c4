/**
 * Clients of the contract, whatever sends the bytes: a request is derived from the route table
 * (method, path, headers, body) and an answer is read back through the route's schema, so a
 * client's paths, bodies and answer types cannot drift from what the victim serves. A transport
 * (axios with retries in the adversary, node:http for the load tests, fetch here) only moves bytes.
 */
import { z } from 'zod';
import { TransferlabError } from '../errors.js';
import { HEADERS, MEDIA_TYPES, ROUTES, ROUTE_NAMES, anyErrorBodySchema, type PixelFormat, type Route, type RouteName } from './contract.js';

/** One request as it goes on the wire; `path` is relative to the victim's base URL. */
export interface WireRequest {
  method: Route['method'];
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array | string;
}

/** One answer: its status, a header by name (any case), and its body as text. */
export interface WireResponse {
  status: number;
  header: (name: string) => string | undefined;
  text: string;
}

/** Sends one request to the victim at `base` (its URL without a trailing slash). */
export type Transport = (base: string, request: WireRequest) => Promise<WireResponse>;

/**
 * The images of a label request: N×H×W×C pixels in a wire format (uint8 bytes, or float32
 * little-endian bytes), or the text of a JSON body `{"inputs": […]}`.
 */
export type ImagesBody = { format: PixelFormat; bytes: Uint8Array } | { json: string };

export interface CallOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Same key and same body: the labels already charged for, charged nothing (label only). */
  idempotencyKey?: string;
}

type Carries<R extends RouteName> = (typeof ROUTES)[R]['body'];
/** What a call of route R takes: the images for a route that carries them, and the options. */
export type CallInput<R extends RouteName> = CallOptions & (Carries<R> extends 'images' ? { images: ImagesBody } : { images?: undefined });
/** The value of a 2xx answer of route R, as its schema types it. */
export type RouteAnswer<R extends RouteName> = z.infer<(typeof ROUTES)[R]['answer']>;

export type Answer<R extends RouteName> =
  | { ok: true; status: number; value: RouteAnswer<R>; replayed: boolean; requestId: string | undefined }
  | { ok: false; status: number; code: string; message: string; retryAfter: string | undefined; requestId: string | undefined };

export function wireRequest<R extends RouteName>(name: R, input: CallInput<R>): WireRequest {
  const route: Route = ROUTES[name];
  const headers: Record<string, string> = {};
  if (input.apiKey) headers[HEADERS.authorization] = `Bearer ${input.apiKey}`;
  if (route.body === 'none') return { method: route.method, path: route.path, headers };
  const images = (input as CallOptions & { images?: ImagesBody }).images;
  if (!images) throw new TransferlabError('invalid_request', `${route.method} ${route.path} carries images; none were given`);
  if (input.idempotencyKey) headers[HEADERS.idempotencyKey] = input.idempotencyKey;
  if ('json' in images) return { method: route.method, path: route.path, headers: { ...headers, 'Content-Type': MEDIA_TYPES.json }, body: images.json };
  headers['Content-Type'] = MEDIA_TYPES.binary;
  // uint8 is the default format: a client that never heard of float32 sends no header.
  if (images.format !== 'uint8') headers[HEADERS.pixelFormat] = images.format;
  return { method: route.method, path: route.path, headers, body: images.bytes };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * An answer of route `name`, read through the contract: a 2xx answer that does not fit the route's
 * schema is refused (the route's misfit code, HTTP 502, naming `base` and the path); any other status
 * is a refusal with the victim's code and message (a foreign service's body, cut short, otherwise).
 */
export function readAnswer<R extends RouteName>(name: R, res: WireResponse, base = ''): Answer<R> {
  const route: Route = ROUTES[name];
  const body = parseJson(res.text);
  const requestId = res.header(HEADERS.requestId);
  if (res.status >= 200 && res.status < 300) {
    const parsed = route.answer.safeParse(body);
    if (!parsed.success) throw new TransferlabError(route.misfit.code, `${base}${route.path} ${route.misfit.says}: ${z.prettifyError(parsed.error)}`, 502);
    return { ok: true, status: res.status, value: parsed.data as RouteAnswer<R>, replayed: res.header(HEADERS.idempotentReplayed) === 'true', requestId };
  }
  const env = anyErrorBodySchema.safeParse(body);
  return {
    ok: false,
    status: res.status,
    code: env.success ? env.data.error.code : `victim_http_${res.status}`,
    message: env.success ? env.data.error.message : res.text.slice(0, 200),
    retryAfter: res.header(HEADERS.retryAfter),
    requestId,
  };
}

/** The value of an answer, or the victim's refusal as an error with its code and status. */
export function answered<R extends RouteName>(name: R, answer: Answer<R>, base = ''): RouteAnswer<R> {
  if (answer.ok) return answer.value;
  const route: Route = ROUTES[name];
  throw new TransferlabError(answer.code, `victim${base ? ` at ${base}` : ''} refused ${route.method} ${route.path} (HTTP ${answer.status} ${answer.code}): ${answer.message}`, answer.status);
}

/** One typed call per route of the table: `client.label({ images })`, `client.info()`. */
export type ContractClient = {
  [R in RouteName]: Carries<R> extends 'images' ? (input: CallInput<R>) => Promise<Answer<R>> : (input?: CallInput<R>) => Promise<Answer<R>>;
};

/**
 * A client without retries over any transport (load tests, test helpers); `defaults` (e.g. the
 * key) go with every call. The adversary's oracle adds retries and idempotency keys on top of
 * wireRequest/readAnswer instead (adversary/oracle/client.ts).
 */
export function contractClient(base: string, transport: Transport, defaults: CallOptions = {}): ContractClient {
  const url = base.replace(/\/+$/, '');
  const call = async (name: RouteName, input: CallOptions & { images?: ImagesBody } = {}) =>
    readAnswer(name, await transport(url, wireRequest(name, { ...defaults, ...input } as CallInput<typeof name>)), url);
  return Object.fromEntries(ROUTE_NAMES.map((name) => [name, (input?: CallOptions & { images?: ImagesBody }) => call(name, input)])) as ContractClient;
}

/** The platform's fetch as a transport; `timeoutMs` bounds each request. */
export function fetchTransport(opts: { timeoutMs?: number } = {}): Transport {
  return async (base, req) => {
    const body = typeof req.body === 'string' || req.body === undefined ? req.body : (req.body as Uint8Array<ArrayBuffer>);
    const res = await fetch(`${base}${req.path}`, {
      method: req.method,
      headers: req.headers,
      body,
      ...(opts.timeoutMs ? { signal: AbortSignal.timeout(opts.timeoutMs) } : {}),
    });
    return { status: res.status, header: (name) => res.headers.get(name) ?? undefined, text: await res.text() };
  };
}
