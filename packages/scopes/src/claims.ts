/**
 * From a connector's claims to the control-plane scopes they need: the one mapping every
 * connector goes through, driven by the scheme its definition registered. Pure.
 */
import { pathComponents, type ResourceClaim } from '@airlock/connector-api/definition';
import { UserError } from '@airlock/errors';
import { hostPort, parseAction, type Resource, type Schemes, type Scope, ScopeSyntaxError } from './grammar.ts';

/** The resource a claim names; `below` widens it to everything under its path (a destination's deliveries). */
export function resourceOfClaim(claim: ResourceClaim, schemes: Schemes, below = false): Resource {
  const spec = schemes.get(claim.scheme);
  if (!spec) throw new UserError(`scheme ${JSON.stringify(claim.scheme)} is not registered`);
  // Component by component; `..` is refused (NotAllowedError), never resolved.
  const components = pathComponents(claim.path);
  const path = below ? [...components, '**'] : components;
  switch (spec.form) {
    case 'network': {
      const authority = claim.authority ?? '';
      const colon = authority.lastIndexOf(':');
      if (colon <= 0) throw new UserError(`a ${claim.scheme} claim names no server (host:port)`);
      const host = authority.slice(0, colon);
      const port = Number(authority.slice(colon + 1));
      const server = hostPort(host.includes(':') ? `[${host}]` : host, port, `${claim.scheme}://${authority}`, port);
      return { scheme: spec.name, form: 'network', ...server, path };
    }
    case 'path':
      return { scheme: spec.name, form: 'path', path };
    case 'name': {
      const [name, ...rest] = components;
      if (name === undefined || rest.length > 0 || below) throw new ScopeSyntaxError(`a ${claim.scheme} claim names one thing: /<name>, not ${JSON.stringify(claim.path)}`);
      return { scheme: spec.name, form: 'name', name };
    }
  }
}

/** The scopes a definition's claims need, in claim order. */
export function scopesOfClaims(claims: readonly ResourceClaim[], schemes: Schemes, options: { below?: boolean } = {}): Scope[] {
  return claims.map((claim) => ({ action: parseAction(claim.action), resource: resourceOfClaim(claim, schemes, options.below) }));
}
