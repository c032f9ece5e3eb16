/**
 * Where the frames of a SEIPDv1 message are hashed (the SHA-1 MDC) and encrypted (AES-CFB): on the
 * calling thread, or on one worker thread the whole process shares.
 *
 * The agent's main thread also runs both SSH connections of a transfer, so a large file's OpenPGP
 * work there is time the connections wait. On the worker it runs beside them, on the other core.
 * Each frame crosses by transfer, not by copy: the plaintext frame goes over and comes back with its
 * ciphertext, to be filled again. A session's frames are sealed and answered in the order they were
 * sent, since CFB and SHA-1 are sequential anyway; sessions of concurrent transfers interleave.
 *
 * The worker runs the short program below, which needs nothing but node:crypto, so it starts the
 * same from the sources, a bundle or a single executable. The session key goes to the worker once,
 * as the cipher's key; nothing is logged there.
 */
import { type Cipher, createCipheriv, createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export type Seipdv1Algorithm = 'aes256' | 'aes128';

export interface Sealed {
  readonly ciphertext: Buffer;
  /** The frame that was sealed, handed back to be filled again. */
  readonly frame: Buffer;
}

/** Seals one message's frames, in order. */
export interface FrameSealer {
  /**
   * Hashes `frame[0, length)` into the MDC and encrypts it. With `final`, the MDC's digest follows,
   * encrypted, and the cipher is finished. `frame` belongs to the sealer until the result hands it back.
   */
  seal(frame: Buffer, length: number, final: boolean): Promise<Sealed>;
  /** Ends the session; a seal still pending rejects. Safe to call more than once. */
  close(): void;
}

const cipherName = (algorithm: Seipdv1Algorithm): string => (algorithm === 'aes256' ? 'aes-256-cfb' : 'aes-128-cfb');
/** OpenPGP's CFB starts from an all-zero IV (RFC 4880 13.9); the random prefix does an IV's work. */
const ZERO_IV = Buffer.alloc(16);

/** The sealer on the calling thread: for messages of one frame, where a thread would cost more than it saves. */
export class InThreadSealer implements FrameSealer {
  readonly #cipher: Cipher;
  readonly #mdc: Hash = createHash('sha1');

  constructor(algorithm: Seipdv1Algorithm, sessionKey: Uint8Array) {
    this.#cipher = createCipheriv(cipherName(algorithm), sessionKey, ZERO_IV);
  }

  seal(frame: Buffer, length: number, final: boolean): Promise<Sealed> {
    const plain = frame.subarray(0, length);
    this.#mdc.update(plain);
    const parts = [this.#cipher.update(plain)];
    if (final) parts.push(this.#cipher.update(this.#mdc.digest()), this.#cipher.final());
    return Promise.resolve({ ciphertext: parts.length === 1 ? (parts[0] ?? Buffer.alloc(0)) : Buffer.concat(parts), frame });
  }

  close(): void {}
}

/** The worker's program: the same steps as `InThreadSealer`, one map entry per open session. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createCipheriv, createHash } = require('node:crypto');
const sessions = new Map();
const ZERO_IV = Buffer.alloc(16);
parentPort.on('message', (message) => {
  const { id } = message;
  if (message.open) {
    sessions.set(id, { cipher: createCipheriv(message.open.cipher, Buffer.from(message.open.key), ZERO_IV), mdc: createHash('sha1') });
    return;
  }
  const session = sessions.get(id);
  if (message.close || session === undefined) {
    sessions.delete(id);
    return;
  }
  try {
    const plain = Buffer.from(message.frame, 0, message.length);
    session.mdc.update(plain);
    const parts = [session.cipher.update(plain)];
    if (message.final) {
      parts.push(session.cipher.update(session.mdc.digest()), session.cipher.final());
      sessions.delete(id);
    }
    const ciphertext = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const owned = ciphertext.byteOffset === 0 && ciphertext.byteLength === ciphertext.buffer.byteLength;
    parentPort.postMessage({ id, frame: message.frame, ciphertext }, owned ? [message.frame, ciphertext.buffer] : [message.frame]);
  } catch (error) {
    sessions.delete(id);
    parentPort.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
`;

interface Reply {
  id: number;
  frame?: ArrayBuffer;
  ciphertext?: Uint8Array;
  error?: string;
}

interface Waiter {
  resolve: (sealed: Sealed) => void;
  reject: (error: Error) => void;
}

/** Waiting seals of one session, oldest first: the worker answers a session's frames in order. */
type Session = Waiter[];

/** The shared worker, started on first use; it keeps the process alive only while a session is open. */
class CryptoThread {
  #worker: Worker | undefined;
  readonly #sessions = new Map<number, Session>();
  #nextId = 1;

  open(algorithm: Seipdv1Algorithm, sessionKey: Uint8Array): FrameSealer {
    const worker = this.#start();
    const id = this.#nextId++;
    const session: Session = [];
    this.#sessions.set(id, session);
    if (this.#sessions.size === 1) worker.ref();
    worker.postMessage({ id, open: { cipher: cipherName(algorithm), key: sessionKey } });
    let closed = false;
    return {
      seal: (frame, length, final) => {
        if (closed) return Promise.reject(new Error('the message is already sealed or abandoned'));
        // Only a buffer that owns its memory may be transferred: a pooled one shares it.
        if (frame.byteOffset !== 0 || frame.byteLength !== frame.buffer.byteLength) return Promise.reject(new RangeError('a frame must own its memory'));
        return new Promise<Sealed>((resolve, reject) => {
          session.push({ resolve, reject });
          worker.postMessage({ id, frame: frame.buffer, length, final }, [frame.buffer as ArrayBuffer]);
        });
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.#end(id, new Error('the message was abandoned while a frame was being sealed'));
        if (this.#worker === worker) worker.postMessage({ id, close: true });
      },
    };
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'airlock-openpgp' });
    worker.unref();
    worker.on('message', (reply: Reply) => this.#answer(reply));
    const fail = (error: Error): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const id of [...this.#sessions.keys()]) this.#end(id, error);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the OpenPGP worker thread exited (code ${code})`)));
    this.#worker = worker;
    return worker;
  }

  #answer(reply: Reply): void {
    const session = this.#sessions.get(reply.id);
    const waiter = session?.shift();
    if (waiter === undefined) return;
    if (reply.error !== undefined || reply.frame === undefined || reply.ciphertext === undefined) {
      const error = new Error(`sealing a frame failed: ${reply.error ?? 'no answer'}`);
      waiter.reject(error);
      this.#end(reply.id, error);
      return;
    }
    const { ciphertext } = reply;
    waiter.resolve({ ciphertext: Buffer.from(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength), frame: Buffer.from(reply.frame) });
  }

  /** Forgets a session, rejecting what it still waits for. */
  #end(id: number, error: Error): void {
    const session = this.#sessions.get(id);
    if (session === undefined) return;
    this.#sessions.delete(id);
    for (const waiter of session.splice(0)) waiter.reject(error);
    if (this.#sessions.size === 0) this.#worker?.unref();
  }
}

const shared = new CryptoThread();

/** A sealer on the process's OpenPGP worker thread. */
export function workerSealer(algorithm: Seipdv1Algorithm, sessionKey: Uint8Array): FrameSealer {
  return shared.open(algorithm, sessionKey);
}
