/** Removes what a begun but unfinished login leaves behind: single sign-on states and pending password logins past their expiry. */
import type { Queryable } from '@airlock/storage';
import { pruneSsoStates } from './oidc.ts';
import { prunePendingLogins } from './second-factor.ts';

export async function pruneLoginSteps(db: Queryable, now: Date): Promise<number> {
  return (await pruneSsoStates(db, now)) + (await prunePendingLogins(db, now));
}
