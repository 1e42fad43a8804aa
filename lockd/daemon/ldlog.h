/* Structured log lines on stderr, one event per line:
 *
 *   ts=2026-12-03T12:34:56.789012Z mono=12.345678 level=info replica=0
 *   event=leader_change leader=1 ...
 *
 * ts is the wall clock (UTC, RFC 3339, microseconds), for people and log
 * tools; mono is the local monotonic clock in seconds, the only clock the
 * daemon trusts, for measuring between lines of one machine. Every function
 * here is safe to call from any thread: nng's callbacks log refused input, the
 * event loop logs everything else. */
#ifndef LD_LDLOG_H
#define LD_LDLOG_H

#include <stdbool.h>
#include <stdint.h>

/* The local monotonic clock in microseconds (CLOCK_MONOTONIC). */
uint64_t ld_mono_us(void);

/* Sets the replica id printed on every line (-1 before it is known). */
void ld_log_init(int32_t replica);

/* Prints one line: level, event, then fmt (a "key=value ..." list, may be
 * NULL). Values with spaces should be quoted by the caller. */
void ld_log(const char *level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* At most one line per interval for a noisy event (refused peer messages,
 * malformed client requests); the next line that passes says how many were
 * suppressed. */
typedef struct ld_ratelimit {
	uint64_t interval_us;
	uint64_t last_us;
	uint64_t suppressed;
} ld_ratelimit;

#define LD_RATELIMIT_INIT(us) \
	{                     \
		(us), 0, 0    \
	}

/* true when the caller may log now; *suppressed is the count held back
 * since the last line that passed (then reset). Thread-safe. */
bool ld_ratelimit_pass(ld_ratelimit *rl, uint64_t *suppressed);

#endif
