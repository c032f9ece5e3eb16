/**
 * `npm run -s bench:signatures -- [--json] [--count 2000]`
 *
 * What checking one agent request signature costs the control plane, by verifier, in one run:
 *   tweetnacl_us      pure-JavaScript Ed25519 (the control plane's verifier before node:crypto);
 *   node_raw_us       `verifyDetached` with the raw 32-byte key (builds the key object every time);
 *   node_cached_us    `verifyDetached` with a key object parsed once, as the agent key cache does;
 * microseconds per verification, over --count signatures by distinct keys, each verified once
 * per verifier, plus the ratios. Every verification must succeed, or the run fails.
 * Prints exactly one JSON object on stdout with --json, a table otherwise.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import nacl from 'tweetnacl';
import { ed25519PublicKey, generateKeyPair, signDetached, verifyDetached } from '@airlock/identity';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, count: { type: 'string', default: '2000' } } });
const count = Number(values.count);
if (!Number.isInteger(count) || count < 1) throw new Error('--count takes a positive whole number');

const samples = Array.from({ length: count }, () => {
  const pair = generateKeyPair();
  const message = randomBytes(200);
  const keyObject = ed25519PublicKey(pair.publicKey);
  if (keyObject === null) throw new Error('a generated key did not parse');
  return { message, signature: signDetached(message, pair.secretKey), publicKey: pair.publicKey, keyObject };
});

function microsecondsEach(verify: (sample: (typeof samples)[number]) => boolean): number {
  // A short warm-up, so the JIT is not what gets measured.
  for (const sample of samples.slice(0, 20)) verify(sample);
  const start = process.hrtime.bigint();
  for (const sample of samples) {
    if (!verify(sample)) throw new Error('a valid signature was refused');
  }
  return Number(process.hrtime.bigint() - start) / 1000 / count;
}

const tweetnacl = microsecondsEach((s) => nacl.sign.detached.verify(s.message, s.signature, s.publicKey));
const nodeRaw = microsecondsEach((s) => verifyDetached(s.message, s.signature, s.publicKey));
const nodeCached = microsecondsEach((s) => verifyDetached(s.message, s.signature, s.keyObject));
const round = (n: number) => Math.round(n * 10) / 10;
const result = {
  count,
  tweetnacl_us: round(tweetnacl),
  node_raw_us: round(nodeRaw),
  node_cached_us: round(nodeCached),
  ratio_raw: round(tweetnacl / nodeRaw),
  ratio_cached: round(tweetnacl / nodeCached),
  node: process.version,
};
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else console.table(result);
