import { expect, it } from 'vitest';
import { nextLink } from './link-header.ts';
import { retryAfterMs } from './source.ts';

it('finds rel=next among several links, with quoted parameters and relative targets', () => {
  const base = 'https://api.internal/v1/items?page=1';
  expect(nextLink('<https://api.internal/v1/items?page=2>; rel="next", <https://api.internal/v1/items?page=9>; rel="last"', base)).toBe('https://api.internal/v1/items?page=2');
  expect(nextLink('</v1/items?page=9>; rel="last", </v1/items?page=2>; title="a, b; c"; rel="prev next"', base)).toBe('https://api.internal/v1/items?page=2');
  expect(nextLink('<https://api.internal/v1/items?page=2>; rel=next', base)).toBe('https://api.internal/v1/items?page=2');
  expect(nextLink('<https://api.internal/v1/items?page=9>; rel="last"', base)).toBeUndefined();
  expect(nextLink(undefined, base)).toBeUndefined();
});

it('reads Retry-After as seconds or as a date', () => {
  expect(retryAfterMs('5')).toBe(5000);
  expect(retryAfterMs(new Date(Date.UTC(2026, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2026, 0, 1))).toBe(30_000);
  expect(retryAfterMs('soon')).toBeUndefined();
  expect(retryAfterMs(undefined)).toBeUndefined();
});
