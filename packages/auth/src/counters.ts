/**
 * Shared rate-limit counters as the statements that count on them see them (migration 0027's
 * `airlock_count`): which counter, and the count it answered. Kept apart from rate-limits.ts so
 * that authentication, which counts an agent's request in its own statement, needs nothing else.
 */

/** One limit's counter for one subject. */
export interface SharedCounter {
  key: string;
  durationSeconds: number;
}

/** Operations counted so far in the counter's window, and when that window ends. */
export interface CounterCount {
  points: number;
  windowEndsAt: Date;
}
