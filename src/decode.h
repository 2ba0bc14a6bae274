/*-------------------------------------------------------------------------
 *
 * decode.h
 *		Conversions between tsoracle timestamps and PostgreSQL's timestamptz.
 *
 * src/decode.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_DECODE_H
#define TSORACLE_DECODE_H

#include "datatype/timestamp.h"

#include "compat.h"

/*
 * Converts Unix milliseconds (the physical part of a timestamp, or the
 * sidecar's high-water mark) to a timestamptz; false if the result would be
 * outside timestamptz's range.
 */
extern TSO_PRIVATE bool decode_unix_ms(uint64 unix_ms, TimestampTz *result);

#endif							/* TSORACLE_DECODE_H */
