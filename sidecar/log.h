/* log.h: leveled logging to stderr, one line per event. */
#ifndef TSORACLE_LOG_H
#define TSORACLE_LOG_H

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO = 1,
	LOG_WARN = 2,
	LOG_ERROR = 3,
};

/* Messages below level are dropped. */
void log_set_level(int level);
int log_get_level(void);

/* Parses "debug", "info", "warn" or "error"; -1 if unknown. */
int log_parse_level(const char *name);

/* Names this process in every line, e.g. "node 1". */
void log_set_prefix(const char *prefix);

void log_printf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_printf(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_printf(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_printf(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_printf(LOG_ERROR, __VA_ARGS__)

#endif /* TSORACLE_LOG_H */
