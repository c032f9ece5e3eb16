/**
 * A hostile control plane for the `compromised-control-plane` suite: it speaks the agent's side of
 * the tRPC wire format (JSON over HTTP, no batching) on loopback, and answers whatever the test tells
 * it to: any identity key, any job (signed or not, by any key), any audit checkpoint and records,
 * any update offer and any artifact bytes.
 * It records every call, so a test can show, for example, that a token was never sent to it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditRecord } from '@airlock/audit';
import { encodeKey, keyFingerprint } from '@airlock/identity';

export interface HostileCall {
  readonly path: string;
  readonly input: unknown;
}

export interface HostileBehaviour {
  /** The key `controlPlane.identity` presents. */
  identityKey: Uint8Array;
  /** Answers for `agent.nextJob`, handed out once each, in order; then `{ envelope: null }`. */
  jobs: unknown[];
  /** What `custody.checkpoint` answers: a tree checkpoint with the agent's tenant's leaf and path, or anything else. */
  checkpoint: unknown;
  records: AuditRecord[];
  rotations: unknown[];
  enrollment: { agentId: string; tenantId: string };
  /** What heartbeats offer as an update (any release, signed by any key, or none). */
  update?: unknown;
  /** What `agent.releaseChunk` serves, by index: the artifact as the control plane chooses to send it. */
  releaseChunks?: Buffer[];
}

const MAX_BODY = 1024 * 1024;
/** A long-poll with nothing to hand out waits this long, so an idle agent does not spin. */
const EMPTY_POLL_MS = 200;

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

export class HostileControlPlane implements AsyncDisposable {
  readonly calls: HostileCall[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly behaviour: HostileBehaviour,
  ) {}

  static async start(behaviour: HostileBehaviour): Promise<HostileControlPlane> {
    // The handler needs the instance, which needs the listening server's port.
    const holder: { self?: HostileControlPlane } = {};
    const server = createServer((request, response) => {
      const self = holder.self;
      if (self === undefined) {
        response.writeHead(503).end();
        return;
      }
      self.handle(request, response).catch(() => {
        if (!response.headersSent) response.writeHead(500);
        response.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const self = new HostileControlPlane(server, `http://127.0.0.1:${port}`, behaviour);
    holder.self = self;
    return self;
  }

  callsTo(path: string): HostileCall[] {
    return this.calls.filter((call) => call.path === path);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.url);
    const path = url.pathname.replace(/^\/trpc\//, '');
    const body = request.method === 'POST' ? await readBody(request) : '';
    const inputText = request.method === 'POST' ? body : url.searchParams.get('input');
    const input: unknown = inputText === null || inputText === '' ? undefined : JSON.parse(inputText);
    this.calls.push({ path, input });
    const data = await this.answer(path, input);
    if (data === undefined) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: `no procedure ${path}`, code: -32004, data: { code: 'NOT_FOUND', httpStatus: 404 } } }));
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ result: { data } }));
  }

  private async answer(path: string, input: unknown): Promise<unknown> {
    const b = this.behaviour;
    switch (path) {
      case 'controlPlane.identity':
        return { publicKey: encodeKey(b.identityKey), keyId: 'hostile', fingerprint: keyFingerprint(b.identityKey) };
      case 'enrollment.enroll':
        return b.enrollment;
      case 'agent.heartbeat':
        return { ok: true, serverTime: new Date().toISOString(), ...(b.update === undefined ? {} : { update: b.update }) };
      case 'agent.releaseChunk': {
        const index = Number(typeof input === 'object' && input !== null ? Reflect.get(input, 'index') : NaN);
        const chunk = b.releaseChunks?.[index];
        return chunk === undefined ? undefined : { data: chunk.toString('base64') };
      }
      case 'agent.reportUpdate':
        return { ok: true };
      case 'agent.nextJob': {
        const next = b.jobs.shift();
        if (next !== undefined) return next;
        await new Promise((resolve) => setTimeout(resolve, EMPTY_POLL_MS));
        return { envelope: null };
      }
      case 'agent.reportRun':
      case 'custody.reportSecurityEvent':
        return { ok: true };
      case 'custody.checkpoint':
        return b.checkpoint;
      case 'custody.auditSegment': {
        const range = typeof input === 'object' && input !== null ? input : {};
        const after = Number(Reflect.get(range, 'afterSeq'));
        const until = Number(Reflect.get(range, 'untilSeq'));
        const limit = Number(Reflect.get(range, 'limit') ?? 1000);
        return b.records.filter((record) => record.seq > after && record.seq <= until).slice(0, limit);
      }
      case 'custody.rotations':
        return b.rotations;
      default:
        return undefined;
    }
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
