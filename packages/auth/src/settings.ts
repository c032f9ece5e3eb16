/**
 * Tunables of admin login and sessions, with production defaults. The server sets `secureCookies`
 * when it speaks TLS; tests lower the scrypt cost and the lockout times through `ServerDeps.auth`.
 * No environment variable reaches the scrypt cost, so a deployment cannot weaken it by config.
 */
import { DEFAULT_SCRYPT, type ScryptParams } from './passwords.ts';

export interface Backoff {
  /** Failures after which the key locks (the failure that reaches it locks too). */
  threshold: number;
  /** First lock, in ms; each further failure doubles it, up to `maxMs`. */
  baseMs: number;
  maxMs: number;
}

export interface AuthSettings {
  scrypt: ScryptParams;
  /** A session ends after this long without a request. Default 30 min. */
  sessionIdleMs: number;
  /** A session ends this long after login, however busy. Default 12 h. */
  sessionAbsoluteMs: number;
  /** Adds `Secure` to the session cookie; on whenever the server runs TLS. */
  secureCookies: boolean;
  /** Per account (and per unknown email, so the two behave alike). */
  accountLockout: Backoff;
  /** Per source address, over all emails. */
  ipThrottle: Backoff & {
    /** A source whose last failure is older than this starts counting again from zero. */
    windowMs: number;
  };
  /**
   * Password hashes running at once in this process, and how many logins may wait for one; past
   * that a login is refused at once (503, Retry-After). Node's thread pool has 4 threads, shared with
   * file and DNS work, so 2 leaves room for the rest. Default 2 and 32.
   */
  hashing: { maxConcurrent: number; maxQueued: number };
  /**
   * Unknown-email logins hashed per process, over all sources: a token bucket (default burst 20,
   * 60 per minute). Past it an unknown email is answered as a wrong password without a hash.
   */
  unknownEmailBudget: { burst: number; perMinute: number };
}

export const defaultAuthSettings: AuthSettings = {
  scrypt: DEFAULT_SCRYPT,
  sessionIdleMs: 30 * 60_000,
  sessionAbsoluteMs: 12 * 3_600_000,
  secureCookies: false,
  accountLockout: { threshold: 5, baseMs: 60_000, maxMs: 3_600_000 },
  ipThrottle: { threshold: 50, baseMs: 60_000, maxMs: 3_600_000, windowMs: 3_600_000 },
  hashing: { maxConcurrent: 2, maxQueued: 32 },
  unknownEmailBudget: { burst: 20, perMinute: 60 },
};

export function resolveAuthSettings(overrides: Partial<AuthSettings> | undefined): AuthSettings {
  return { ...defaultAuthSettings, ...overrides };
}
