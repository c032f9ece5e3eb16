/**
 * Protocol timings: how often an agent speaks, how long its long-poll waits, and when the control
 * plane counts it as healthy, online or lost. Both sides import these, so a change here changes
 * the protocol; `timings.test.ts` holds the relations between them that the design relies on.
 */

/**
 * An idle agent heartbeats this often (ms): its version, host and summary, and the answer's key
 * rotation and update offers. Its liveness does not wait for this: every signed request counts as
 * seen, and so does an open wake-up stream (`AGENT_SEEN_REFRESH_MS`).
 */
export const HEARTBEAT_INTERVAL_MS = 5 * 60_000;

/** While a job runs, the agent keeps itself heard of this often (ms), even when no byte moves. */
export const JOB_KEEPALIVE_MS = 60_000;

/**
 * How long the agent asks the control plane to hold a long-poll for work open (ms). An empty one is
 * answered at a random point in its last fifth, so a fleet's long-polls do not stay in step.
 */
export const LONG_POLL_WAIT_MS = 25_000;

/** The longest long-poll the control plane holds (ms); a request asking more is refused. */
export const LONG_POLL_MAX_WAIT_MS = 30_000;

/**
 * How long the control plane keeps an agent's wake-up stream open (ms) before ending it, with no
 * job for the agent; the agent opens the next at once. It ends at a random point in the last fifth,
 * so a fleet's reopenings spread out. A revocation or key rotation ends a stream at once (through
 * LISTEN/NOTIFY); the bound has every stream's signature and key checked afresh now and then anyway.
 */
export const WAKEUP_STREAM_MS = 15 * 60_000;

/**
 * A wake-up stream with nothing to say sends a ping this often (ms): proxies and load balancers
 * that close connections idle for a minute (the common default) keep it open.
 */
export const WAKEUP_PING_MS = 20_000;

/** The agent drops a wake-up stream it has heard nothing on, not even a ping, for this long (ms), and opens another. */
export const WAKEUP_SILENCE_MS = 50_000;

/**
 * An agent with a wake-up stream open counts as seen: each control plane refreshes the
 * `last_seen_at` of the agents waiting on it once it is this old (ms), in its wake-up sweep, one
 * statement for all of them.
 */
export const AGENT_SEEN_REFRESH_MS = 30_000;

/** The longest the agent waits between retries of a failed control-plane call (ms), before jitter. */
export const RECONNECT_MAX_DELAY_MS = 30_000;

/** A group member seen this recently (ms) is healthy: a group's run goes to it. */
export const AGENT_HEALTHY_WITHIN_MS = 90_000;

/** The console shows an agent seen this recently (ms) as online. */
export const AGENT_ONLINE_WITHIN_MS = 150_000;

/** A run whose agent is not heard of for this long (ms) is closed as abandoned. */
export const AGENT_LOST_AFTER_MS = 15 * 60_000;

/** A single sign-on begun but not finished within this long (ms) is refused at the callback. */
export const OIDC_LOGIN_STATE_TTL_MS = 10 * 60_000;

/** The control plane's requests to an identity provider (discovery, keys, token) give up after this long (ms). */
export const OIDC_REQUEST_TIMEOUT_MS = 10_000;

/** A password login waiting for its second factor (or a new password) lapses after this long (ms). */
export const PENDING_LOGIN_TTL_MS = 5 * 60_000;

/** How long an OAuth access token lives: short, so a leaked one is worth little. Never more than `MAX_ACCESS_TOKEN_TTL_SECONDS`. */
export const ACCESS_TOKEN_TTL_SECONDS = 600;
export const MAX_ACCESS_TOKEN_TTL_SECONDS = 900;

/** The furthest ahead a client assertion (private_key_jwt) may expire; its jti is remembered that long. */
export const CLIENT_ASSERTION_MAX_LIFETIME_SECONDS = 300;

/** Clock skew tolerated on the times inside client assertions and access tokens. */
export const JWT_CLOCK_TOLERANCE_SECONDS = 30;

/** How often the request log's queue is written to the database, at the latest. */
export const REQUEST_LOG_FLUSH_MS = 1_000;

/**
 * How often a control plane sweeps the agents long-polling on it for work whose wake-up it missed
 * (ms); one query covers all of them. Wake-ups normally arrive at once through LISTEN/NOTIFY, so
 * this bounds only the lateness of a lost notification.
 */
export const WAKE_SWEEP_MS = 10_000;

/**
 * A new agent version that has not heartbeated this long (ms) after the switch is rolled back: by
 * itself when it runs but cannot reach the control plane, or by the unit's guard at the next start.
 */
export const UPDATE_CONFIRM_WITHIN_MS = 5 * 60_000;

/** Starts of a new agent version, counted by the unit's guard, before it rolls back to the previous one. */
export const UPDATE_MAX_STARTS = 3;

/** An update offered to an agent that has reported nothing for this long (ms) counts as failed in its ring. */
export const UPDATE_OFFER_TIMEOUT_MS = 30 * 60_000;

/**
 * The database-derived metrics (agents by state, runs by outcome, queue depth, deliveries) are
 * computed at most this often (ms) per control plane: scrapes in between get the last values, so
 * however many scrapers there are, the database does this work once per interval.
 */
export const METRICS_DB_REFRESH_MS = 10_000;

/** `/readyz` gives each check this long (ms) before it counts as failed: a probe must answer even while the database hangs. */
export const READINESS_CHECK_TIMEOUT_MS = 2_000;
