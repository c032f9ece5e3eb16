/**
 * The scope grammar: an action on a resource.
 *
 *   action    list | read | write | execute | delete
 *   resource  sftp://<host>[:<port>]/<path pattern>   (port 22 when absent)
 *             file:///<path pattern>
 *             script:<name>
 *
 * Path patterns are split on `/` and each component is percent-decoded exactly once, then must be
 * an ordinary name: `..`, `.`, an encoded separator, a double encoding, a backslash, NUL or any
 * control character is refused outright, never resolved, so no encoding can widen a grant. `*` and `?` match within one
 * component and `**` spans components; none of them matches a name starting with a dot.
 */
import { isSafeName } from '@airlock/connector-api';
import { UserError } from '@airlock/errors';

export const actions = ['list', 'read', 'write', 'execute', 'delete'] as const;
export type Action = (typeof actions)[number];

export type Resource =
  | { readonly scheme: 'sftp'; readonly host: string; readonly port: number; readonly path: readonly string[] }
  | { readonly scheme: 'file'; readonly path: readonly string[] }
  | { readonly scheme: 'script'; readonly name: string };

export interface Scope {
  readonly action: Action;
  readonly resource: Resource;
}

export class ScopeSyntaxError extends UserError {}

const HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;
const SCRIPT = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SFTP = /^sftp:\/\/([^/:]+|\[[^\]]+\])(?::([0-9]{1,5}))?(\/.*)$/;
const FILE = /^file:\/\/(\/.*)$/;

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

export function parseResource(text: string): Resource {
  const sftp = SFTP.exec(text);
  if (sftp) {
    const host = (sftp[1] ?? '').toLowerCase();
    if (!HOST.test(host)) throw new ScopeSyntaxError(`bad host in ${JSON.stringify(text)}`);
    const port = sftp[2] === undefined ? 22 : Number(sftp[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ScopeSyntaxError(`bad port in ${JSON.stringify(text)}`);
    return { scheme: 'sftp', host, port, path: parsePathPattern(sftp[3] ?? '', text) };
  }
  const file = FILE.exec(text);
  if (file) return { scheme: 'file', path: parsePathPattern(file[1] ?? '', text) };
  if (text.startsWith('script:')) {
    const name = text.slice('script:'.length);
    if (!SCRIPT.test(name)) throw new ScopeSyntaxError(`bad script name in ${JSON.stringify(text)}`);
    return { scheme: 'script', name };
  }
  throw new ScopeSyntaxError(`unknown resource ${JSON.stringify(text)}: expected sftp://host:port/path, file:///path or script:name`);
}

export function parseAction(text: string): Action {
  const action = actions.find((candidate) => candidate === text);
  if (!action) throw new ScopeSyntaxError(`unknown action ${JSON.stringify(text)}: expected ${actions.join(', ')}`);
  return action;
}

/** `read sftp://host:22/exports/**` */
export function parseScope(text: string): Scope {
  const match = /^([a-z]+) (\S+)$/.exec(text.trim());
  if (!match) throw new ScopeSyntaxError(`expected "<action> <resource>", got ${JSON.stringify(text)}`);
  return { action: parseAction(match[1] ?? ''), resource: parseResource(match[2] ?? '') };
}

function encodePath(path: readonly string[]): string {
  return `/${path.map((c) => encodeURIComponent(c).replace(/%2A/g, '*').replace(/%3F/g, '?')).join('/')}`;
}

/** The canonical spelling of a resource: the same resource always prints the same. */
export function formatResource(resource: Resource): string {
  switch (resource.scheme) {
    case 'sftp':
      return `sftp://${resource.host}:${resource.port}${encodePath(resource.path)}`;
    case 'file':
      return `file://${encodePath(resource.path)}`;
    case 'script':
      return `script:${resource.name}`;
  }
}

export function formatScope(scope: Scope): string {
  return `${scope.action} ${formatResource(scope.resource)}`;
}
