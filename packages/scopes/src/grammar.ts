/**
 * The scope grammar: an action on a resource. Which schemes exist is not fixed here: it comes from
 * the connector registry (each definition declares its `SchemeSpec`), and every parse takes that
 * table, so a connector added to the registry is grantable without touching this file.
 *
 *   action    list | read | write | execute | delete
 *   resource  <scheme>://<host>[:<port>]/<path pattern>   a `network` scheme (`sftp`, `s3`, `https`, …);
 *                                                         its default port when absent
 *             <scheme>:///<path pattern>                  a `path` scheme (`file`)
 *             <scheme>:<name>                             a `name` scheme (`script`)
 *
 * Path patterns are split on `/` and each component is percent-decoded exactly once, then must be
 * an ordinary name: `..`, `.`, an encoded separator, a double encoding, a backslash, NUL or any
 * control character is refused outright, never resolved, so no encoding can widen a grant. `*` and `?` match within one
 * component and `**` spans components; none of them matches a name starting with a dot.
 */
import { isSafeName, type SchemeSpec } from '@airlock/connector-api/definition';
import { UserError } from '@airlock/errors';

export const actions = ['list', 'read', 'write', 'execute', 'delete'] as const;
export type Action = (typeof actions)[number];

/** The registered schemes by name: `schemesOf(definitions)` from `@airlock/connector-api/definition`. */
export type Schemes = ReadonlyMap<string, SchemeSpec>;

export type Resource =
  | { readonly scheme: string; readonly form: 'network'; readonly host: string; readonly port: number; readonly path: readonly string[] }
  | { readonly scheme: string; readonly form: 'path'; readonly path: readonly string[] }
  | { readonly scheme: string; readonly form: 'name'; readonly name: string };

export interface Scope {
  readonly action: Action;
  readonly resource: Resource;
}

export class ScopeSyntaxError extends UserError {}

const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SCHEME = /^([a-z][a-z0-9+.-]{0,31}):/;
const NETWORK = /^\/\/([^/:]+|\[[^\]]+\])(?::([0-9]{1,5}))?(\/.*)$/;
const LOCAL = /^\/\/(\/.*)$/;

function decodeComponent(raw: string, text: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new ScopeSyntaxError(`bad percent-encoding in ${JSON.stringify(text)}`);
  }
  if (!isSafeName(decoded)) throw new ScopeSyntaxError(`unsafe path component ${JSON.stringify(raw)} in ${JSON.stringify(text)}`);
  // Decoding happens once; what still looks encoded afterwards would mean something else to the
  // next decoder down the line, so it is refused rather than guessed at.
  if (/%[0-9a-f]{2}/i.test(decoded)) throw new ScopeSyntaxError(`double-encoded path component ${JSON.stringify(raw)} in ${JSON.stringify(text)}`);
  return decoded;
}

/** Components of a path pattern; empty components and `.` are refused too, so a pattern has one spelling. */
export function parsePathPattern(pathText: string, text = pathText): string[] {
  if (!pathText.startsWith('/')) throw new ScopeSyntaxError(`path must be absolute in ${JSON.stringify(text)}`);
  if (pathText === '/') return [];
  const raw = pathText.slice(1).replace(/\/$/, '').split('/');
  return raw.map((component) => {
    if (component === '') throw new ScopeSyntaxError(`empty path component in ${JSON.stringify(text)}`);
    return decodeComponent(component, text);
  });
}

/** `host:port` for a network scheme, as a claim's `authority` carries it; IPv6 literals take brackets in a scope. */
export function hostPort(host: string, port: number | undefined, text: string, defaultPort: number): { host: string; port: number } {
  const lower = host.toLowerCase();
  if (!HOST.test(lower)) throw new ScopeSyntaxError(`bad host in ${JSON.stringify(text)}`);
  const value = port ?? defaultPort;
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new ScopeSyntaxError(`bad port in ${JSON.stringify(text)}`);
  return { host: lower, port: value };
}

function expected(schemes: Schemes): string {
  return [...schemes.values()]
    .map((spec) => (spec.form === 'network' ? `${spec.name}://host:port/path` : spec.form === 'path' ? `${spec.name}:///path` : `${spec.name}:name`))
    .join(', ');
}

/** A resource in one of the registered schemes' forms; an unregistered scheme is refused. */
export function parseResource(text: string, schemes: Schemes): Resource {
  const name = SCHEME.exec(text)?.[1];
  const spec = name === undefined ? undefined : schemes.get(name);
  if (name === undefined || spec === undefined) {
    throw new ScopeSyntaxError(`unknown resource ${JSON.stringify(text)}: expected ${expected(schemes)}`);
  }
  const rest = text.slice(name.length + 1);
  switch (spec.form) {
    case 'network': {
      const match = NETWORK.exec(rest);
      if (!match) throw new ScopeSyntaxError(`expected ${name}://host:port/path, got ${JSON.stringify(text)}`);
      const { host, port } = hostPort(match[1] ?? '', match[2] === undefined ? undefined : Number(match[2]), text, spec.defaultPort ?? 0);
      return { scheme: name, form: 'network', host, port, path: parsePathPattern(match[3] ?? '', text) };
    }
    case 'path': {
      const match = LOCAL.exec(rest);
      if (!match) throw new ScopeSyntaxError(`expected ${name}:///path, got ${JSON.stringify(text)}`);
      return { scheme: name, form: 'path', path: parsePathPattern(match[1] ?? '', text) };
    }
    case 'name':
      if (!NAME.test(rest)) throw new ScopeSyntaxError(`bad ${name} name in ${JSON.stringify(text)}`);
      return { scheme: name, form: 'name', name: rest };
  }
}

export function parseAction(text: string): Action {
  const action = actions.find((candidate) => candidate === text);
  if (!action) throw new ScopeSyntaxError(`unknown action ${JSON.stringify(text)}: expected ${actions.join(', ')}`);
  return action;
}

/** `read sftp://host:22/exports/**` */
export function parseScope(text: string, schemes: Schemes): Scope {
  const match = /^([a-z]+) (\S+)$/.exec(text.trim());
  if (!match) throw new ScopeSyntaxError(`expected "<action> <resource>", got ${JSON.stringify(text)}`);
  return { action: parseAction(match[1] ?? ''), resource: parseResource(match[2] ?? '', schemes) };
}

function encodePath(path: readonly string[]): string {
  return `/${path.map((c) => encodeURIComponent(c).replace(/%2A/g, '*').replace(/%3F/g, '?')).join('/')}`;
}

/** The canonical spelling of a resource: the same resource always prints the same. */
export function formatResource(resource: Resource): string {
  switch (resource.form) {
    case 'network':
      return `${resource.scheme}://${resource.host}:${resource.port}${encodePath(resource.path)}`;
    case 'path':
      return `${resource.scheme}://${encodePath(resource.path)}`;
    case 'name':
      return `${resource.scheme}:${resource.name}`;
  }
}

export function formatScope(scope: Scope): string {
  return `${scope.action} ${formatResource(scope.resource)}`;
}
