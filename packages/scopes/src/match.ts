/**
 * Whether a grant covers a request, and `explain`, which says which grant or rule decided. Deny by
 * default: a request is allowed only when a live grant for the same subject, action and resource
 * covers it. Coverage is conservative: when a request is itself a pattern, it is covered only if
 * everything it could match is provably inside the grant.
 */
import { formatScope, type Resource, type Scope } from './grammar.ts';

const GLOB = /[*?]/;

function segmentRegExp(pattern: string): RegExp {
  let source = '^';
  for (const char of pattern) {
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${source}$`, 'u');
}

function segmentCovers(grant: string, request: string): boolean {
  if (grant === request) return true;
  // A dot-name is matched only by a pattern that spells the dot itself.
  if (request.startsWith('.') && !grant.startsWith('.')) return false;
  if (!GLOB.test(request)) return segmentRegExp(grant).test(request);
  // A request pattern segment is covered only by `*`, which matches every name in one component.
  return grant === '*';
}

/** Whether every path the request pattern can match is matched by the grant pattern. */
export function pathCovers(grant: readonly string[], request: readonly string[]): boolean {
  const [g, ...gRest] = grant;
  const [r, ...rRest] = request;
  if (g === undefined) return r === undefined;
  if (g === '**') {
    if (pathCovers(gRest, request)) return true;
    if (r === undefined || r.startsWith('.')) return false;
    return pathCovers(grant, rRest);
  }
  if (r === undefined || r === '**') return false;
  return segmentCovers(g, r) && pathCovers(gRest, rRest);
}

export function resourceCovers(grant: Resource, request: Resource): boolean {
  if (grant.scheme !== request.scheme) return false;
  switch (grant.form) {
    case 'network':
      return request.form === 'network' && grant.host === request.host && grant.port === request.port && pathCovers(grant.path, request.path);
    case 'path':
      return request.form === 'path' && pathCovers(grant.path, request.path);
    case 'name':
      return request.form === 'name' && grant.name === request.name;
  }
}

export function covers(grant: Scope, request: Scope): boolean {
  return grant.action === request.action && resourceCovers(grant.resource, request.resource);
}

export type Subject = { readonly type: 'agent' | 'group'; readonly id: string };

export interface Grant extends Scope {
  readonly id: string;
  readonly tenantId: string;
  readonly subject: Subject;
  readonly expiresAt?: Date | null;
}

export interface AccessRequest extends Scope {
  readonly tenantId: string;
  readonly agentId: string;
  /** Groups the agent belongs to. */
  readonly groups?: readonly string[];
}

export type Verdict =
  | { readonly allowed: true; readonly grant: Grant; readonly reason: string }
  | { readonly allowed: false; readonly grant: null; readonly reason: string };

function appliesTo(grant: Grant, request: AccessRequest): boolean {
  if (grant.tenantId !== request.tenantId) return false;
  return grant.subject.type === 'agent' ? grant.subject.id === request.agentId : (request.groups ?? []).includes(grant.subject.id);
}

/** The decision for one request, with the grant that allowed it or the reason it was denied. */
export function explain(grants: readonly Grant[], request: AccessRequest, now: Date = new Date()): Verdict {
  const wanted = formatScope(request);
  const mine = grants.filter((grant) => appliesTo(grant, request));
  const live = mine.filter((grant) => !grant.expiresAt || grant.expiresAt.getTime() > now.getTime());
  const allowing = live.find((grant) => covers(grant, request));
  if (allowing) return { allowed: true, grant: allowing, reason: `${wanted} is covered by grant ${allowing.id} (${formatScope(allowing)})` };
  if (mine.some((grant) => covers(grant, request))) {
    return { allowed: false, grant: null, reason: `${wanted}: the only grants covering it have expired` };
  }
  const sameAction = live.filter((grant) => grant.action === request.action);
  if (sameAction.length === 0) return { allowed: false, grant: null, reason: `${wanted}: no ${request.action} grant for this agent` };
  return { allowed: false, grant: null, reason: `${wanted}: not covered by any of ${sameAction.length} ${request.action} grant(s)` };
}

