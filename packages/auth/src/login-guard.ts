/**
 * Keeps password logins from stalling each other. scrypt runs on Node's small libuv thread pool, so
 * a flood of logins would queue every real login behind it: a gate bounds the hashes running and
 * waiting in this process (past it, a login is refused at once with 503 and Retry-After), and a
 * global budget bounds how many unknown emails are hashed at all, since the per-address and
 * per-email counters cannot stop a flood spread over many addresses and emails.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { OperationalError } from '@airlock/errors';
import type { AuthSettings } from './settings.ts';

type Release = () => void;

/** A counting semaphore with a bounded queue. */
export class HashGate {
  #active = 0;
  readonly #waiting: Array<(release: Release) => void> = [];

  constructor(readonly limits: { maxConcurrent: number; maxQueued: number }) {}

  /** Whether a caller would be refused now: every slot taken and the queue full. */
  saturated(): boolean {
    return this.#active >= this.limits.maxConcurrent && this.#waiting.length >= this.limits.maxQueued;
  }

  /** A slot (perhaps after a wait), or null at once when the queue is full. */
  tryAcquire(): Promise<Release> | null {
    if (this.#active < this.limits.maxConcurrent) {
      this.#active += 1;
      return Promise.resolve(this.#releaser());
    }
    if (this.#waiting.length >= this.limits.maxQueued) return null;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** How many callers hold or wait for a slot. */
  get load(): number {
    return this.#active + this.#waiting.length;
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter, so a newcomer cannot overtake the queue.
      if (next) next(this.#releaser());
      else this.#active -= 1;
    };
  }
}

/** A token bucket: `burst` tokens at most, refilled at `perMinute`. */
export class TokenBucket {
  #tokens: number;
  #updatedAt: number | null = null;

  constructor(readonly rate: { burst: number; perMinute: number }) {
    this.#tokens = rate.burst;
  }

  take(now: Date): boolean {
    const at = now.getTime();
    if (this.#updatedAt !== null && at > this.#updatedAt) {
      this.#tokens = Math.min(this.rate.burst, this.#tokens + ((at - this.#updatedAt) * this.rate.perMinute) / 60_000);
    }
    if (this.#updatedAt === null || at > this.#updatedAt) this.#updatedAt = at;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Refused because the process is hashing as many passwords as it will; carries Retry-After. */
export class LoginBusy extends OperationalError {
  constructor(readonly retryAfterSeconds: number) {
    super(`login is busy; retry in ${retryAfterSeconds} s`);
    this.name = 'LoginBusy';
  }
}

export class LoginGuard {
  readonly gate: HashGate;
  readonly #unknownEmails: TokenBucket;
  /** A running average of recent hash times, for Retry-After and for answering without a hash. */
  #typicalHashMs = 300;

  constructor(settings: Pick<AuthSettings, 'hashing' | 'unknownEmailBudget'>) {
    this.gate = new HashGate(settings.hashing);
    this.#unknownEmails = new TokenBucket(settings.unknownEmailBudget);
  }

  /** Whether an unknown email may still be hashed against the dummy hash now. */
  takeUnknownEmail(now: Date): boolean {
    return this.#unknownEmails.take(now);
  }

  get typicalHashMs(): number {
    return this.#typicalHashMs;
  }

  retryAfterSeconds(): number {
    const perSlot = (this.gate.load * this.#typicalHashMs) / Math.max(1, this.gate.limits.maxConcurrent);
    return Math.max(1, Math.ceil(perSlot / 1000));
  }

  /** Runs `hash` in a slot of the gate; throws LoginBusy at once when the queue is full. */
  async hash<T>(hash: () => Promise<T>): Promise<T> {
    const slot = this.gate.tryAcquire();
    if (slot === null) throw new LoginBusy(this.retryAfterSeconds());
    const release = await slot;
    const started = performance.now();
    try {
      return await hash();
    } finally {
      this.#typicalHashMs = Math.min(5_000, this.#typicalHashMs * 0.8 + (performance.now() - started) * 0.2);
      release();
    }
  }
}

/**
 * The address a login or request counts against: IPv4 as is, an IPv4-mapped IPv6 address as its
 * IPv4, any other IPv6 address as its /64, because one host usually holds a whole /64 and could
 * otherwise pick a fresh address for every attempt.
 */
export function addressKey(address: string | null): string {
  if (address === null || address === '') return 'unknown';
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped?.[1] !== undefined && isIPv4(mapped[1])) return mapped[1];
  if (!isIPv6(bare)) return bare;
  const [head = '', tail = ''] = bare.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = bare.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  // An embedded dotted IPv4 tail fills two groups; it never reaches the first four.
  const rightGroups = right.reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0);
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - rightGroups)).fill('0'), ...right];
  const prefix = groups.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16));
  return `${prefix.join(':')}::/64`;
}
