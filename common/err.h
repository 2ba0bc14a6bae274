/* err.h: errors as a return code plus a message in the caller's buffer. */
#ifndef TSORACLE_ERR_H
#define TSORACLE_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/*
 * Writes the formatted message into err (errlen bytes, always terminated;
 * nothing if err is NULL) and returns -1, so a failing function can end
 * with `return err_set(err, errlen, "...", ...);`. libuv and errno codes
 * are turned into text once, where they are met (uv_strerror, strerror).
 *
 * Static, in the header: every object has its own copy, so libtsoracle
 * (sidecar/alloc.c) uses it without exporting a name an embedder's own
 * err_set would clash with, and the extension links no extra object.
 */
static inline int err_vset(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static inline int err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* err_set for a function of its own that takes "...": tsoracle-ctl's
 * ctl_fail, the state machine's fsm_halt. */
static inline int err_vset(char *err, size_t errlen, const char *fmt, va_list ap)
{
	if (err != NULL && errlen > 0)
		vsnprintf(err, errlen, fmt, ap);
	return -1;
}

static inline int err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

#endif /* TSORACLE_ERR_H */
