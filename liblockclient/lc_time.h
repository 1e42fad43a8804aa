/* Client-side lease time, as pure functions of the client's own monotonic
 * clock. liblockclient and the simulator's clients share them, so what the
 * simulator proves about a client's belief is what the library computes.
 *
 * A client believes it holds a lease with token T from the moment a GRANTED
 * reply arrives until lc_lease_deadline_us(sent_us, ...), where sent_us is
 * when it FIRST SENT that acquire (retries reuse the first send time), and
 * each RENEW reply that lists T moves the deadline to the same function of
 * that renew's first send time. Measuring from the send is what makes the
 * belief safe: the leader started the lease no earlier than the send, so
 * the belief cannot outlast the leader's deadline by more than the clock
 * drift, which the cell's grace delay covers. Measuring from the reply's
 * arrival instead is wrong: the reply can arrive arbitrarily late.
 *
 * The TTL is shortened by the drift bound: a clock that runs slow by
 * drift_ppm reads ttl x (1 - drift) after at most ttl of real time. */
#ifndef LC_TIME_H
#define LC_TIME_H

#include <stdbool.h>
#include <stdint.h>

/* Default: renew when a third of the TTL remains. */
#define LC_RENEW_REMAINING_PERMILLE 333u

/* The part of ttl_us a clock within drift_ppm may lose, rounded up (so the
 * deadline is rounded down: the safe side). */
static inline uint64_t lc_drift_allowance_us(uint64_t ttl_us,
					     uint32_t drift_ppm)
{
	return (ttl_us * drift_ppm + 999999u) / 1000000u;
}

/* The last local instant (exclusive) at which the client may believe it
 * holds a lease that it asked for (or renewed) at local time sent_us. */
static inline uint64_t lc_lease_deadline_us(uint64_t sent_us, uint32_t ttl_ms,
					    uint32_t drift_ppm)
{
	uint64_t ttl_us = (uint64_t)ttl_ms * 1000u;
	return sent_us + ttl_us - lc_drift_allowance_us(ttl_us, drift_ppm);
}

/* When to renew: remaining_permille thousandths of the TTL before the
 * deadline (LC_RENEW_REMAINING_PERMILLE by default). */
static inline uint64_t lc_lease_renew_at_us(uint64_t sent_us, uint32_t ttl_ms,
					    uint32_t drift_ppm,
					    uint32_t remaining_permille)
{
	uint64_t deadline = lc_lease_deadline_us(sent_us, ttl_ms, drift_ppm);
	uint64_t before = (uint64_t)ttl_ms * remaining_permille;
	return deadline > sent_us + before ? deadline - before : sent_us;
}

/* The client-side belief: true while now_us is before the deadline. */
static inline bool lc_lease_valid(uint64_t now_us, uint64_t deadline_us)
{
	return now_us < deadline_us;
}

#endif
