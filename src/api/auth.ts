// Bearer tokens from API_TOKENS (`token:user,token:user`): each token is bound to one user id,
// and every task route acts as that user. Tokens are kept only as SHA-256 digests, so looking
// one up takes the same path whatever the token, and a heap dump does not reveal them.
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The user the request's token belongs to; set by `authenticate` on task routes. */
    userId: string;
  }
}

/** The `user_id` column is VARCHAR(64). */
const MAX_USER_ID_CHARS = 64;
/** Shorter tokens can be guessed; a random one is easy to make: `openssl rand -hex 24`. */
const MIN_TOKEN_CHARS = 8;

export type TokenUsers = ReadonlyMap<string, string>;

const digest = (token: string) => createHash('sha256').update(token).digest('hex');

/** Parses API_TOKENS; throws naming the bad entry, so a typo stops the server at start-up. */
export function parseApiTokens(text: string): TokenUsers {
  const users = new Map<string, string>();
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  for (const [i, entry] of entries.entries()) {
    const where = `API_TOKENS entry ${i + 1}`;
    const colon = entry.lastIndexOf(':');
    const token = entry.slice(0, colon).trim();
    const user = entry.slice(colon + 1).trim();
    if (colon < 0 || !token || !user) throw new Error(`${where} is not of the form token:user; write API_TOKENS=token:user,token:user`);
    if (token.length < MIN_TOKEN_CHARS) {
      throw new Error(`${where} (user '${user}') has a token of ${token.length} characters; use at least ${MIN_TOKEN_CHARS}, e.g. from \`openssl rand -hex 24\``);
    }
    if (user.length > MAX_USER_ID_CHARS) throw new Error(`${where}: user id '${user.slice(0, 20)}…' is longer than ${MAX_USER_ID_CHARS} characters`);
    if (users.has(digest(token))) throw new Error(`${where} (user '${user}') repeats a token given earlier; each token must be unique`);
    users.set(digest(token), user);
  }
  if (users.size === 0) {
    throw new Error('API_TOKENS is empty, so nobody could use the API: set it to token:user pairs, e.g. API_TOKENS=$(openssl rand -hex 24):alice');
  }
  return users;
}

/** An onRequest hook: 401 unless the request carries a known bearer token. */
export function authenticator(users: TokenUsers) {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    if (!header) {
      throw new ApiError(401, 'unauthenticated', 'no API token: send the header Authorization: Bearer <token> (tokens are set in API_TOKENS)');
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new ApiError(401, 'unauthenticated', 'the Authorization header is not of the form "Bearer <token>": send Authorization: Bearer <token>');
    }
    const user = users.get(digest(match[1]!));
    if (user === undefined) {
      throw new ApiError(401, 'unauthenticated', 'the API token is not valid: check it against API_TOKENS, or ask the operator for one');
    }
    request.userId = user;
  };
}
