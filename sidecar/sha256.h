/* sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), to authenticate Raft peers. */
#ifndef TSORACLE_SHA256_H
#define TSORACLE_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Small and self-contained, so that the daemon needs no crypto library for
 * the one thing it does with one: prove to a peer that both ends hold the
 * same secret. Not built for speed (a handshake hashes a few hundred bytes).
 *
 * A context is used as init, any number of updates, then final; final wipes
 * the context, which must be initialised again before it is used again.
 * Messages are limited to 2^61 - 1 bytes (the standard's 2^64 - 1 bits).
 */

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN  64

typedef struct sha256_ctx {
	uint32_t h[8];   /* the intermediate hash value H(i) */
	uint64_t bytes;  /* message bytes taken so far */
	uint8_t buf[64]; /* a partial block, `used` bytes long */
	size_t used;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
/* The digest of one message in one call. */
void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN]);

/*
 * HMAC (RFC 2104) with SHA-256: H((K0 ^ opad) || H((K0 ^ ipad) || text)).
 * init hashes the two padded keys into the two contexts, so the key itself
 * is not kept; the contexts, though, are as good as the key to an attacker:
 * final wipes them.
 */
typedef struct hmac_sha256_ctx {
	sha256_ctx inner, outer;
} hmac_sha256_ctx;

/* Keys longer than 64 bytes are hashed first (RFC 2104, section 2). */
void hmac_sha256_init(hmac_sha256_ctx *c, const void *key, size_t keylen);
void hmac_sha256_update(hmac_sha256_ctx *c, const void *data, size_t len);
void hmac_sha256_final(hmac_sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
void hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
		 uint8_t out[SHA256_DIGEST_LEN]);

/* Constant-time comparison: returns true when equal, time independent of where they differ. */
bool sha256_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif /* TSORACLE_SHA256_H */
