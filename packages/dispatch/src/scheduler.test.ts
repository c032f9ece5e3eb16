import { describe, expect, it } from 'vitest';
import { latestFireTime, nextFireTime, validateSchedule } from './scheduler.ts';

const now = new Date('2026-01-15T12:00:00Z');

/** Every fire time in [from, to), by walking `nextFireTime`; bounded. */
function fireTimes(schedule: { cron: string; timezone: string }, from: Date, to: Date): Date[] {
  const times: Date[] = [];
  let at = new Date(from.getTime() - 1);
  for (let i = 0; i < 1000; i += 1) {
    at = nextFireTime(schedule, at);
    if (at >= to) return times;
    times.push(at);
  }
  throw new Error('too many fire times');
}

const berlinDate = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit' });
const berlinTime = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit' });

describe('cron validation', () => {
  it.each([
    ['61 * * * *', /schedule\.cron "61 \* \* \* \*": .*59/],
    ['* * *', /expected 5 fields/],
    ['0 0 * * * *', /expected 5 fields/],
    ['0 0 30 2 *', /schedule\.cron "0 0 30 2 \*": .*day of month/],
    ['H 2 * * *', /H \(hashed\) values are not supported/],
    ['every day', /expected 5 fields/],
  ])('refuses %j with the reason', (cron, reason) => {
    expect(() => validateSchedule({ cron, timezone: 'UTC' }, now)).toThrow(reason);
  });

  it('names an unknown time zone', () => {
    expect(() => validateSchedule({ cron: '0 2 * * *', timezone: 'Mars/Olympus' }, now)).toThrow(/schedule\.timezone "Mars\/Olympus": unknown time zone/);
  });

  it('accepts ordinary expressions, names included', () => {
    for (const cron of ['0 2 * * *', '*/15 * * * *', '0 6 * * MON-FRI', '30 1 1 JAN,JUL *', '0 0 L * *']) {
      expect(() => validateSchedule({ cron, timezone: 'Europe/Berlin' }, now)).not.toThrow();
    }
  });
});

describe('fire times', () => {
  it('reads the cron in the schedule\'s time zone', () => {
    expect(nextFireTime({ cron: '0 2 * * *', timezone: 'UTC' }, now).toISOString()).toBe('2026-01-16T02:00:00.000Z');
    expect(nextFireTime({ cron: '0 2 * * *', timezone: 'Europe/Berlin' }, now).toISOString()).toBe('2026-01-16T01:00:00.000Z');
    expect(nextFireTime({ cron: '0 2 * * *', timezone: 'America/New_York' }, now).toISOString()).toBe('2026-01-16T07:00:00.000Z');
  });

  it('counts a fire time at the instant itself as the latest, and the next one as strictly later', () => {
    const at = new Date('2026-01-16T02:00:00Z');
    const schedule = { cron: '0 2 * * *', timezone: 'UTC' };
    expect(latestFireTime(schedule, at).toISOString()).toBe(at.toISOString());
    expect(latestFireTime(schedule, new Date(at.getTime() - 1)).toISOString()).toBe('2026-01-15T02:00:00.000Z');
    expect(nextFireTime(schedule, at).toISOString()).toBe('2026-01-17T02:00:00.000Z');
  });

  it.each([
    ['spring forward (02:00 does not exist on 29 March)', '2026-03-26T00:00:00Z', '2026-04-02T00:00:00Z'],
    ['fall back (02:00 happens twice on 25 October)', '2026-10-22T00:00:00Z', '2026-10-29T00:00:00Z'],
  ])('fires `0 2 * * *` in Europe/Berlin once per local day across %s', (_label, from, to) => {
    const times = fireTimes({ cron: '0 2 * * *', timezone: 'Europe/Berlin' }, new Date(from), new Date(to));
    const days = times.map((time) => berlinDate.format(time));
    expect(times).toHaveLength(7);
    expect(new Set(days).size).toBe(7);
    // On the spring day 02:00 is skipped by the clocks, so the run happens at 03:00; else at 02:00.
    expect(times.map((time) => berlinTime.format(time)).filter((hour) => hour !== '02:00')).toEqual(from.startsWith('2026-03') ? ['03:00'] : []);
  });
});
