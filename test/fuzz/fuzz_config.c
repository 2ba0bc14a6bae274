/* fuzz_config.c: libFuzzer target for tsoracled's config file parser and checks (sidecar/config.c). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sys/socket.h>

#include "config.h"
#include "fuzz_check.h"
#include "fuzz_sidecar.h"
#include "log.h"

/*
 * The input is a config file's contents, read as cfg_load_file reads one
 * (cfg_load_text), then checked as tsoracled checks its settings
 * (cfg_check). A refusal must come with a message; a configuration that
 * passes must hold what cfg_check promises: every string fits its buffer,
 * this node is among the peers at its Raft address (unless it joins: then
 * it has a client address and needs no peers), nothing listens off
 * loopback without TLS, the timing rules hold,
 * and every address it accepted converts to a socket address (the
 * listeners' and dialers' own parser, cfg_sockaddr).
 */

#define FUZZ_FITS(field) FUZZ_CHECK(strnlen((field), sizeof(field)) < sizeof(field))

static void check_accepted(const cfg *c)
{
	struct sockaddr_storage ss;
	bool self = false;

	FUZZ_FITS(c->data_dir);
	FUZZ_FITS(c->raft_address);
	FUZZ_FITS(c->client_socket);
	FUZZ_FITS(c->client_tcp);
	FUZZ_FITS(c->pid_file);
	FUZZ_CHECK(c->data_dir[0] != '\0' && c->pid_file[0] != '\0');
	FUZZ_CHECK(c->client_socket[0] != '\0' || c->client_tcp[0] != '\0');
	FUZZ_CHECK(c->node_id >= 1);
	/* A member that waits to be added (join) bootstraps nothing: peers
	 * may be empty (the leader that adds it gives it the configuration),
	 * but it needs a client address for the others to forward to. */
	if (c->join)
		FUZZ_CHECK(c->n_peers <= CFG_MAX_PEERS && c->client_tcp[0] != '\0');
	else
		FUZZ_CHECK(c->n_peers >= 1 && c->n_peers <= CFG_MAX_PEERS);
	FUZZ_CHECK(cfg_sockaddr(c->raft_address, &ss) == 0);
	if (c->client_tcp[0] != '\0')
		FUZZ_CHECK(cfg_sockaddr(c->client_tcp, &ss) == 0);
	for (unsigned i = 0; i < c->n_peers; i++) {
		FUZZ_FITS(c->peers[i].address);
		FUZZ_FITS(c->peers[i].client);
		FUZZ_CHECK(c->peers[i].id >= 1);
		FUZZ_CHECK(cfg_sockaddr(c->peers[i].address, &ss) == 0);
		if (c->peers[i].client[0] != '\0')
			FUZZ_CHECK(cfg_sockaddr(c->peers[i].client, &ss) == 0);
		for (unsigned j = 0; j < i; j++)
			FUZZ_CHECK(c->peers[j].id != c->peers[i].id);
		/* (a joining member reads peers only to tell tsoracle-ctl where
		 * the cluster is: its own entry is not checked) */
		if (c->peers[i].id == c->node_id && !c->join) {
			self = true;
			FUZZ_CHECK(strcmp(c->peers[i].address, c->raft_address) == 0);
		}
	}
	FUZZ_CHECK(self || c->join);
	/* Off loopback, only with TLS (a cluster's Raft, the client port; a
	 * joining member's own Raft address). */
	FUZZ_CHECK(cfg_has_tls(c) || !c->join || cfg_is_loopback(c->raft_address));
	for (unsigned i = 0; i < c->n_peers && c->n_peers > 1; i++)
		FUZZ_CHECK(cfg_has_tls(c) || cfg_is_loopback(c->peers[i].address));
	FUZZ_CHECK(cfg_has_tls(c) || c->client_tcp[0] == '\0' || cfg_is_loopback(c->client_tcp));
	FUZZ_CHECK(c->alloc.lease_ms < c->election_timeout_ms);
	FUZZ_CHECK(c->heartbeat_ms * 2 <= c->election_timeout_ms);
	FUZZ_CHECK(c->snapshot_trailing < c->snapshot_threshold);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cfg c; /* large: keep it off the stack */
	char err[CFG_ERR_SIZE];

	cfg_defaults(&c);
	err[0] = '\0';
	if (cfg_load_text(&c, "fuzz.conf", (const char *)data, size, err, sizeof err) != 0 ||
	    cfg_check(&c, err, sizeof err) != 0) {
		FUZZ_CHECK(err[0] != '\0' && strnlen(err, sizeof err) < sizeof err);
		return 0;
	}
	check_accepted(&c);
	return 0;
}
