#include "ldlog.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int32_t log_replica = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t ld_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ld_log_init(int32_t replica)
{
	log_replica = replica;
}

void ld_log(const char *level, const char *event, const char *fmt, ...)
{
	/* One buffer, one write: lines from different threads never mix. */
	char line[1024];
	uint64_t now = ld_mono_us();
	struct timespec wall;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &wall);
	gmtime_r(&wall.tv_sec, &tm);
	int n = snprintf(line, sizeof line,
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ "
			 "mono=%llu.%06llu level=%s replica=%d event=%s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, wall.tv_nsec / 1000,
			 (unsigned long long)(now / 1000000u),
			 (unsigned long long)(now % 1000000u), level,
			 (int)log_replica, event);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	if (fmt != NULL && len + 2 < sizeof line) {
		line[len++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
		va_end(ap);
		if (m > 0)
			len += (size_t)m < sizeof line - len
				       ? (size_t)m
				       : sizeof line - len - 1;
	}
	if (len + 1 >= sizeof line)
		len = sizeof line - 2;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

bool ld_ratelimit_pass(ld_ratelimit *rl, uint64_t *suppressed)
{
	uint64_t now = ld_mono_us();
	bool pass = false;
	pthread_mutex_lock(&log_lock);
	if (rl->last_us == 0 || now >= rl->last_us + rl->interval_us) {
		pass = true;
		rl->last_us = now;
		*suppressed = rl->suppressed;
		rl->suppressed = 0;
	} else {
		rl->suppressed++;
	}
	pthread_mutex_unlock(&log_lock);
	return pass;
}
