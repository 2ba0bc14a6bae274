/* fuzz_sidecar.h: what the fuzz targets of sidecar modules share; included once, by each target's one file.
 */
#ifndef TSORACLE_FUZZ_SIDECAR_H
#define TSORACLE_FUZZ_SIDECAR_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "tsoracle.h"
#include "log.h"

/* One replica's state machine. */
typedef struct replica {
	struct raft_fsm fsm;
	fsm_state st;
} replica;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The sidecar's log (config.c) is silenced, or the fuzzer would spend its
 * time writing to stderr; the state machine logs only through a log
 * function (fsm_set_log), which these targets do not set. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR + 1);
	return 0;
}

#endif /* TSORACLE_FUZZ_SIDECAR_H */
