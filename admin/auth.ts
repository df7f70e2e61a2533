import { hash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TokenConfig } from '../config/schema.js';
import { HttpError } from '../core/errors.js';
import type { Permission } from './http.js';

export type Role = TokenConfig['role'];

/** Who is calling: from the matched admin token. */
export interface Principal {
  name: string;
  role: Role;
  tenant: string | null;
}

const GRANTS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set(['public', 'read', 'write_keys', 'admin', 'ingest_usage']),
  developer: new Set(['public', 'read', 'write_keys']),
  viewer: new Set(['public', 'read']),
  gateway: new Set(['public', 'ingest_usage']),
};

/** Per permission, the roles that hold it, as a 403 names them ("admin or developer"). */
const HOLDERS = new Map<Permission, string>(
  (['read', 'write_keys', 'admin', 'ingest_usage'] as const).map((p) => {
    const roles = (Object.keys(GRANTS) as Role[]).filter((r) => GRANTS[r].has(p));
    return [p, roles.length === 1 ? roles[0]! : `${roles.slice(0, -1).join(', ')} or ${roles[roles.length - 1]}`];
  }),
);

/**
 * The challenges of an admin 401 (RFC 6750 §3): no error code when no bearer token came, and
 * `invalid_token` for one that matched no configured token.
 */
const NO_TOKEN = Object.freeze({ 'www-authenticate': 'Bearer realm="keygate-admin"' });
const WRONG_TOKEN = Object.freeze({ 'www-authenticate': 'Bearer realm="keygate-admin", error="invalid_token"' });

/**
 * Matches a bearer token against the configured ones. Both sides are reduced to SHA-256
 * digests and every configured token is compared with timingSafeEqual, so neither a token's
 * length nor how much of it matched shows in the time taken.
 */
export class TokenAuth {
  readonly #tokens: { digest: Buffer; principal: Principal }[];

  constructor(tokens: readonly TokenConfig[]) {
    this.#tokens = tokens.map((t) => ({
      digest: hash('sha256', t.token, 'buffer'),
      principal: Object.freeze({ name: t.name, role: t.role, tenant: t.tenant }),
    }));
  }

  authenticate(req: IncomingMessage): Principal {
    const header = req.headers.authorization;
    if (header === undefined || !/^bearer /i.test(header)) throw new HttpError('unauthorized', undefined, undefined, NO_TOKEN);
    const found = this.match(header.slice(7).trim());
    if (found === null) {
      throw new HttpError('unauthorized', 'This admin token is not recognised; check that you copied it whole, or ask the operator for one.', undefined, WRONG_TOKEN);
    }
    return found;
  }

  /** The principal of this token, or null; as long whatever the token (the dashboard's token sign-in). */
  match(token: string): Principal | null {
    const digest = hash('sha256', token, 'buffer');
    let found: Principal | null = null;
    for (const t of this.#tokens) {
      if (timingSafeEqual(digest, t.digest)) found = t.principal;
    }
    return found;
  }
}

export function authorize(p: Principal, permission: Permission): void {
  if (!GRANTS[p.role].has(permission)) {
    throw new HttpError('forbidden', `The ${p.role} role may not do this; it takes a token of role ${HOLDERS.get(permission) ?? 'admin'}.`);
  }
}
