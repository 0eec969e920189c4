import { z } from 'zod';

/**
 * The victim's base URL, as given to --victim or a config file's `victim`: http(s) only. A bare
 * host:port (the usual slip) is answered with the URL it most likely meant, never a bare "Invalid URL".
 */
export function victimUrlProblem(raw: string): string | undefined {
  const guess = `http://${raw.replace(/^\/+/, '')}`;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return `--victim '${raw}' is not a URL; give e.g. ${URL.canParse(guess) ? guess : 'http://127.0.0.1:8080'}`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    // `localhost:8080` parses as the scheme "localhost:": it too lacks http://.
    const bare = !raw.includes('://') && URL.canParse(guess);
    return `--victim '${raw}' must be an http:// or https:// URL${bare ? `; give ${guess}` : ''}`;
  }
  return undefined;
}

/** The schema of a victim URL in settings (campaigns, query attacks). */
export const victimUrl = z.string().superRefine((raw, ctx) => {
  const problem = victimUrlProblem(raw);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
