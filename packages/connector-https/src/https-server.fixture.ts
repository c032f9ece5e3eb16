/**
 * A REST endpoint over real TLS for tests, on loopback: a CA made here with openssl, a server
 * certificate for 127.0.0.1 signed by it, and a client certificate for mutual TLS. It serves one
 * collection two ways (`/api/records` paged by `Link` headers, `/api/cursor` by a cursor field),
 * counts every connection and request it sees, and can answer 429 or tamper with links on demand.
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';

const run = (file: string, args: readonly string[]) => promisify(execFile)(file, args, { timeout: 30_000 });

export interface TestCertificates {
  readonly caPem: string;
  readonly serverPem: string;
  readonly serverKey: string;
  readonly clientPem: string;
  readonly clientKey: string;
  /** The server certificate's SHA-256 fingerprint, as openssl prints it (`AB:CD:…`). */
  readonly serverFingerprint: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl (argv, no shell). */
export async function makeCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(path.join(tmpdir(), 'airlock-https-certs-'));
  try {
    const file = (name: string) => path.join(dir, name);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    await run('openssl', ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=Airlock test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    const issue = async (name: string, subject: string, extensions: string) => {
      await writeFile(file(`${name}.ext`), extensions);
      await run('openssl', ['req', '-new', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', subject]);
      await run('openssl', ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
        '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`)]);
    };
    await issue('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    await issue('client', '/CN=airlock-agent', 'extendedKeyUsage=clientAuth\n');
    const read = (name: string) => readFile(file(name), 'utf8');
    const serverPem = await read('server.pem');
    return {
      caPem: await read('ca.pem'),
      serverPem,
      serverKey: await read('server.key'),
      clientPem: await read('client.pem'),
      clientKey: await read('client.key'),
      serverFingerprint: new X509Certificate(serverPem).fingerprint256,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One named set of records; `at(i)` is record i as compact JSON text. */
interface Dataset {
  readonly name: string;
  length: number;
  at(i: number): string;
}

export interface ApiServerOptions {
  /** Records per page. Default 64. */
  readonly pageSize?: number;
  /** What the first page is recognised by: an ETag (default), Last-Modified, or nothing (its bytes). */
  readonly validator?: 'etag' | 'last-modified' | 'none';
  /** Indent pages like a pretty-printing API does. Default false. */
  readonly pretty?: boolean;
  /** The Authorization header every request must carry; undefined: none asked for. */
  readonly authorization?: string;
  /** Requests must come with a client certificate signed by the CA. */
  readonly requireClientCertificate?: boolean;
}

export interface ApiServer extends AsyncDisposable {
  readonly port: number;
  readonly origin: string;
  readonly certificates: TestCertificates;
  /** TCP connections accepted. */
  readonly connections: { count: number };
  /** Requests as `METHOD path?query`. */
  readonly requests: string[];
  /** Adds records (compact JSON texts) under `name`; returns the SHA-256 of their JSON Lines. */
  putRecords(name: string, records: readonly string[]): string;
  /** Adds `data` as records of base64 chunks, or that many bytes of generated records; returns the SHA-256 of their JSON Lines. */
  put(name: string, data: Buffer | number): string;
  /** Replaces `name`'s records with others of the same count. */
  change(name: string): void;
  names(): string[];
  clear(): void;
  /** The next `times` requests are answered with `status` and `Retry-After: retryAfter` (if given). */
  refuseNext(times: number, status: 429 | 503, retryAfter?: string): void;
  /** Replaces the `Link` header of every page with this one (undefined: the real one). */
  linkOverride: string | undefined;
  stop(): Promise<void>;
}

const CHUNK = 3000;

/** Compact JSON spread over lines and spaces, without parsing it (a parse would round big numbers). */
function spread(json: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const char = json.charAt(i);
    out += char;
    if (inString) {
      if (char === '\\') out += json.charAt(++i);
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[' || char === ',') out += '\n      ';
    else if (char === ':') out += ' ';
  }
  return out;
}
const FILLER = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(112);

export async function startApiServer(options: ApiServerOptions = {}, certificates?: TestCertificates): Promise<ApiServer> {
  const certs = certificates ?? (await makeCertificates());
  const pageSize = options.pageSize ?? 64;
  let datasets: Dataset[] = [];
  let version = 1;
  const modified = () => new Date(Date.UTC(2026, 0, 1) + version * 1000).toUTCString();
  const connections = { count: 0 };
  const requests: string[] = [];
  let refusals: { times: number; status: number; retryAfter: string | undefined } = { times: 0, status: 429, retryAfter: undefined };

  const total = () => datasets.reduce((sum, d) => sum + d.length, 0);
  const recordAt = (index: number): string => {
    let i = index;
    for (const dataset of datasets) {
      if (i < dataset.length) return dataset.at(i);
      i -= dataset.length;
    }
    throw new Error(`no record ${index}`);
  };
  const pageOf = (from: number): string[] => {
    const records: string[] = [];
    for (let i = from; i < Math.min(total(), from + pageSize); i++) records.push(recordAt(i));
    return records;
  };
  const indent = (records: string[]) => (options.pretty ? records.map((r) => `\n    ${spread(r)}`) : records);

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    requests.push(`${request.method ?? ''} ${request.url ?? ''}`);
    const url = new URL(request.url ?? '/', 'https://127.0.0.1');
    const socket = request.socket as TLSSocket;
    const send = (status: number, headers: Record<string, string>, body = '') => {
      response.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
      response.end(body);
    };
    if (options.requireClientCertificate && !socket.authorized) return send(401, { 'content-type': 'text/plain' }, 'client certificate required');
    if (options.authorization !== undefined && request.headers.authorization !== options.authorization) return send(401, { 'content-type': 'text/plain' }, 'unauthorized');
    if (request.method !== 'GET') return send(405, { allow: 'GET' });
    if (refusals.times > 0) {
      refusals.times -= 1;
      return send(refusals.status, refusals.retryAfter === undefined ? {} : { 'retry-after': refusals.retryAfter });
    }
    const validator: Record<string, string> =
      options.validator === 'none' ? {} : options.validator === 'last-modified' ? { 'last-modified': modified() } : { etag: `"v${version}"` };
    if (url.pathname === '/api/records') {
      const page = Number(url.searchParams.get('page') ?? '1');
      const records = pageOf((page - 1) * pageSize);
      const more = page * pageSize < total();
      const link = linkFor(request.headers.host ?? `127.0.0.1:${port}`, page, more);
      const body = `{"page":${page},"items":[${indent(records).join(',')}${options.pretty ? '\n  ' : ''}]}`;
      return send(200, { 'content-type': 'application/json; charset=utf-8', ...validator, ...(link ? { link } : {}) }, body);
    }
    if (url.pathname === '/api/cursor') {
      const from = Number(url.searchParams.get('after') ?? '0');
      const records = pageOf(from);
      const next = from + pageSize < total() ? String(from + pageSize) : null;
      const body = `{"data":{"items":[${indent(records).join(',')}]},"next_cursor":${JSON.stringify(next)}}`;
      return send(200, { 'content-type': 'application/json', ...validator }, body);
    }
    if (url.pathname === '/api/moved') return send(302, { location: '/api/records' });
    if (url.pathname === '/api/text') return send(200, { 'content-type': 'text/plain' }, '[]');
    return send(404, { 'content-type': 'text/plain' }, 'not found');
  };
  // Absolute, on the Host the client asked for, as most APIs write them.
  const linkFor = (host: string, page: number, more: boolean): string | undefined => {
    if (server.linkOverride !== undefined) return server.linkOverride;
    const last = `</api/records?page=${Math.max(1, Math.ceil(total() / pageSize))}>; rel="last"`;
    return more ? `<https://${host}/api/records?page=${page + 1}>; rel="next", ${last}` : last;
  };

  const http = https.createServer({ key: certs.serverKey, cert: certs.serverPem, ca: certs.caPem, requestCert: true, rejectUnauthorized: false }, handle);
  http.on('connection', () => (connections.count += 1));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const address = http.address();
  if (address === null || typeof address === 'string') throw new Error('the test API server has no port');
  const port = address.port;

  const hashOf = (dataset: Dataset) => {
    const hash = createHash('sha256');
    for (let i = 0; i < dataset.length; i++) hash.update(`${dataset.at(i)}\n`);
    return hash.digest('hex');
  };
  const add = (dataset: Dataset) => {
    datasets = [...datasets.filter((d) => d.name !== dataset.name), dataset];
    version += 1;
    return hashOf(dataset);
  };
  const server: ApiServer = {
    port,
    origin: `https://127.0.0.1:${port}`,
    certificates: certs,
    connections,
    requests,
    linkOverride: undefined,
    putRecords: (name, records) => add({ name, length: records.length, at: (i) => records[i] ?? '' }),
    put(name, data) {
      if (typeof data !== 'number') {
        const count = Math.ceil(data.length / CHUNK);
        return add({ name, length: count, at: (i) => JSON.stringify({ dataset: name, seq: i, data: data.subarray(i * CHUNK, (i + 1) * CHUNK).toString('base64') }) });
      }
      // Spelled out rather than stringified per record: a generated collection is cheap to serve.
      const head = `{"dataset":${JSON.stringify(name)},"seq":`;
      const tail = `,"data":"${FILLER}"}`;
      const record = (i: number) => `${head}${i}${tail}`;
      const size = Buffer.byteLength(record(0)) + 1;
      return add({ name, length: Math.ceil(data / size), at: record });
    },
    change(name) {
      const dataset = datasets.find((d) => d.name === name);
      if (!dataset) throw new Error(`no dataset ${name}`);
      const before = dataset.at.bind(dataset);
      dataset.at = (i) => JSON.stringify({ ...(JSON.parse(before(i)) as object), changed: true });
      version += 1;
    },
    names: () => datasets.map((d) => d.name).sort(),
    clear() {
      datasets = [];
      version += 1;
      server.linkOverride = undefined;
      refusals = { times: 0, status: 429, retryAfter: undefined };
    },
    refuseNext(times, status, retryAfter) {
      refusals = { times, status, retryAfter };
    },
    async stop() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
    [Symbol.asyncDispose]: () => server.stop(),
  };
  return server;
}
