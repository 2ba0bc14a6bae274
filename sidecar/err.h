/* err.h: errors as a return code plus a message in the caller's buffer. */
#ifndef TSORACLE_ERR_H
#define TSORACLE_ERR_H

#include <stddef.h>

/*
 * Writes the formatted message into err (errlen bytes, always terminated)
 * and returns -1, so a failing function can end with
 * `return err_set(err, errlen, "...", ...);`. libuv and errno codes are
 * turned into text once, where they are met (uv_strerror, strerror).
 */
int err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* TSORACLE_ERR_H */
