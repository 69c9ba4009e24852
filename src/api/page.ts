// The web page: a few static files, no build step. It loads without a token (the page asks for one
// and sends it with every API call). The Content-Security-Policy allows only these same-origin files,
// so even a rendering bug cannot run injected script.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

const PUBLIC_DIR = new URL('./public/', import.meta.url);

const ASSETS = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { path: '/recurring.js', file: 'recurring.js', type: 'text/javascript; charset=utf-8' },
  { path: '/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
];

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // A new deploy's page is picked up on the next load.
  'cache-control': 'no-cache',
};

export function pageRoutes(app: FastifyInstance): void {
  for (const asset of ASSETS) {
    // Read once at start-up: a missing file stops the server instead of failing the first visitor.
    const content = readFileSync(new URL(asset.file, PUBLIC_DIR));
    app.get(asset.path, async (_request, reply) => reply.headers({ ...SECURITY_HEADERS, 'content-type': asset.type }).send(content));
  }
}
