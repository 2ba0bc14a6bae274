/* broken_write.c: positive control for check-examples, linked into kvd with -Wl,--wrap=raft_apply: a write
 * path that corrupts some values. */
#include <stdint.h>
#include <string.h>

#include <raft.h>

/*
 * Breaks the store on purpose (never in what `make examples` builds): one
 * PUT in KV_BROKEN_EVERY reaches the log with the last byte of its value
 * changed, after the client was promised its own value. kvload must find
 * the acknowledged write missing (or a value never written) on every
 * member, which shows its key-value check can fail.
 */

#define KV_BROKEN_EVERY 100
#define KV_ENVELOPE     8
#define KV_KIND_KV      2
#define KV_OP_PUT       1

int __real_raft_apply(struct raft *r, struct raft_apply *req, const struct raft_buffer bufs[], unsigned n,
		      raft_apply_cb cb);
int __wrap_raft_apply(struct raft *r, struct raft_apply *req, const struct raft_buffer bufs[], unsigned n,
		      raft_apply_cb cb);

int __wrap_raft_apply(struct raft *r, struct raft_apply *req, const struct raft_buffer bufs[], unsigned n,
		      raft_apply_cb cb)
{
	static unsigned puts;
	uint8_t *p = bufs[0].base;

	if (n == 1 && bufs[0].len >= KV_ENVELOPE && p[0] == KV_KIND_KV && p[1] == KV_OP_PUT &&
	    ++puts % KV_BROKEN_EVERY == 0) {
		size_t klen = (size_t)p[2] << 8 | p[3];
		size_t vlen = (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 | p[7];

		if (vlen > 0) {
			uint8_t *last = p + KV_ENVELOPE + klen + vlen - 1;

			*last = *last == 'x' ? 'y' : 'x';
		}
	}
	return __real_raft_apply(r, req, bufs, n, cb);
}
