/* log.c: leveled logging to stderr, one line per event. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX_SIZE 64
#define LOG_LINE_SIZE   1024

static int log_level = LOG_INFO;
static char log_prefix[LOG_PREFIX_SIZE] = "";

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};
#define LOG_N_LEVELS (sizeof log_level_names / sizeof log_level_names[0])

void log_set_level(int level)
{
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

int log_parse_level(const char *name)
{
	for (size_t i = 0; i < LOG_N_LEVELS; i++)
		if (strcmp(name, log_level_names[i]) == 0)
			return (int)i;
	return -1;
}

void log_set_prefix(const char *prefix)
{
	snprintf(log_prefix, sizeof log_prefix, "%s", prefix);
}

void log_printf(int level, const char *fmt, ...)
{
	char line[LOG_LINE_SIZE];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (level < log_level || level < 0 || (size_t)level >= LOG_N_LEVELS)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n,
			      ".%03ld tsoracled[%ld] %s%s%s: ", (long)(tv.tv_usec / 1000), (long)getpid(),
			      log_prefix, log_prefix[0] ? " " : "", log_level_names[level]);
	if (n < sizeof line) {
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof line - n, fmt, ap);
		va_end(ap);
	}
	/* One write per line, so lines of concurrent processes do not mix. */
	n = strlen(line);
	if (n + 1 < sizeof line) {
		line[n++] = '\n';
	} else {
		line[sizeof line - 2] = '\n';
		n = sizeof line - 1;
	}
	(void)!write(STDERR_FILENO, line, n);
}
