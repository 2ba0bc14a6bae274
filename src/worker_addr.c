/*-------------------------------------------------------------------------
 *
 * worker_addr.c
 *		Parsing of tsoracle.sidecar_address; apart from the worker because
 *		the setting's check hook (tsoracle.c) also runs it, in any process:
 *		it does no I/O and uses none of the worker's state.
 *
 * The parser itself is common/addr.c, the one tsoracled and tsoracle-ctl
 * use, so that every address one of them accepts means the same to the
 * others; here its reason becomes an errdetail sentence.
 *
 * src/worker_addr.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "worker.h"

bool
worker_parse_address(const char *text, WorkerAddress *addr, char *err,
					 size_t errlen)
{
	char		why[256];

	if (tp_addr_parse(text, TP_ADDR_CLIENT, addr, why, sizeof(why)) == 0)
		return true;
	/* "the port must be ..." -> "The port must be ...." */
	why[0] = (char) pg_toupper((unsigned char) why[0]);
	snprintf(err, errlen, "%s.", why);
	return false;
}
