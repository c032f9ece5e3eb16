/**
 * bench:fleet's reference for a signed call: the least any call costs on this machine, measured in
 * the same run. A plain node:http server answers each POST with one prepared statement on a pool of
 * 10 PostgreSQL connections (the control plane's pool size), and nothing else: no signature, no
 * nonce, no tRPC, no authorization. fleet.ts drives it with the same concurrency and the same HTTP
 * client (fetch) its agents use, and reports how the heartbeats compare.
 *
 * Started by fleet.ts over IPC with DATABASE_URL set; it answers with `{ url }` once it listens on
 * loopback, and ends on SIGTERM.
 */
import { createServer } from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'], max: 10 });
const LOOKUP = { name: 'fleet-floor', text: 'SELECT $1::text AS echo, now() AS at' };

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    pool.query({ ...LOOKUP, values: [Buffer.concat(chunks).toString('utf8')] }).then(
      (result) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ result: { data: { ok: true, serverTime: (result.rows[0] as { at: Date }).at.toISOString() } } }));
      },
      () => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"query failed"}');
      },
    );
  });
});
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the reference server has no port');
  process.send?.({ url: `http://127.0.0.1:${address.port}` });
});
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool.end().then(() => process.exit(0));
});
