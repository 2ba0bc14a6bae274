/*-------------------------------------------------------------------------
 *
 * funcs.h
 *		The SQL functions that take timestamps from the sidecar (funcs.c).
 *
 * src/funcs.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSORACLE_FUNCS_H
#define TSORACLE_FUNCS_H

#include "compat.h"

/*
 * Module initialization, from _PG_init: installs the executor and utility
 * hooks that mark where a statement begins and ends (tsoracle.batching).
 */
extern TSO_PRIVATE void funcs_init(void);

#endif							/* TSORACLE_FUNCS_H */
