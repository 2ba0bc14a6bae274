/* sha256.c: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), to authenticate Raft peers. */
#include "sha256.h"

#include <string.h>

#include "bytes.h"

#define HMAC_IPAD         0x36
#define HMAC_OPAD         0x5c
/* The length field that ends the padded message: a 64-bit count of bits. */
#define SHA256_LEN_OFFSET (SHA256_BLOCK_LEN - 8)

/* FIPS 180-4, 5.3.3: the first 32 bits of the fractional parts of the
 * square roots of the first eight primes. */
static const uint32_t sha256_h0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* FIPS 180-4, 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4, 3.2 and 4.1.2: rotation and the six logical functions. */
static inline uint32_t rotr(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static inline uint32_t ch(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (~x & z);
}

static inline uint32_t maj(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (x & z) ^ (y & z);
}

static inline uint32_t big_sigma0(uint32_t x)
{
	return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}

static inline uint32_t big_sigma1(uint32_t x)
{
	return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

static inline uint32_t small_sigma0(uint32_t x)
{
	return rotr(x, 7) ^ rotr(x, 18) ^ x >> 3;
}

static inline uint32_t small_sigma1(uint32_t x)
{
	return rotr(x, 17) ^ rotr(x, 19) ^ x >> 10;
}

/* FIPS 180-4, 6.2.2: one 512-bit block into the hash value h. */
static void sha256_block(uint32_t h[8], const uint8_t *block)
{
	uint32_t w[64];
	uint32_t a, b, c, d, e, f, g, hh;
	int t;

	for (t = 0; t < 16; t++)
		w[t] = bytes_get_u32(block + 4 * t);
	for (; t < 64; t++)
		w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	f = h[5];
	g = h[6];
	hh = h[7];
	for (t = 0; t < 64; t++) {
		uint32_t t1 = hh + big_sigma1(e) + ch(e, f, g) + sha256_k[t] + w[t];
		uint32_t t2 = big_sigma0(a) + maj(a, b, c);

		hh = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
	/* The schedule holds the block: under HMAC, the padded key. */
	explicit_bzero(w, sizeof w);
}

void sha256_init(sha256_ctx *c)
{
	memcpy(c->h, sha256_h0, sizeof c->h);
	c->bytes = 0;
	c->used = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (len == 0)
		return; /* data may then be NULL */
	c->bytes += len;
	if (c->used > 0) {
		size_t n = SHA256_BLOCK_LEN - c->used;

		if (n > len)
			n = len;
		memcpy(c->buf + c->used, p, n);
		c->used += n;
		p += n;
		len -= n;
		if (c->used < SHA256_BLOCK_LEN)
			return;
		sha256_block(c->h, c->buf);
		c->used = 0;
	}
	for (; len >= SHA256_BLOCK_LEN; p += SHA256_BLOCK_LEN, len -= SHA256_BLOCK_LEN)
		sha256_block(c->h, p);
	if (len > 0) {
		memcpy(c->buf, p, len);
		c->used = len;
	}
}

void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN])
{
	/* FIPS 180-4, 5.1.1: a 1 bit, zeros up to 448 bits mod 512, then the
	 * message length in bits. used < 64 here: a full buffer is always
	 * hashed at once. */
	uint64_t bits = c->bytes * 8;
	int i;

	c->buf[c->used++] = 0x80;
	if (c->used > SHA256_LEN_OFFSET) {
		memset(c->buf + c->used, 0, SHA256_BLOCK_LEN - c->used);
		sha256_block(c->h, c->buf);
		c->used = 0;
	}
	memset(c->buf + c->used, 0, SHA256_LEN_OFFSET - c->used);
	bytes_put_u64(c->buf + SHA256_LEN_OFFSET, bits);
	sha256_block(c->h, c->buf);
	for (i = 0; i < 8; i++)
		bytes_put_u32(out + 4 * i, c->h[i]);
	explicit_bzero(c, sizeof *c);
}

void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN])
{
	sha256_ctx c;

	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, out);
}

void hmac_sha256_init(hmac_sha256_ctx *c, const void *key, size_t keylen)
{
	/* RFC 2104, section 2: K0 is the key (hashed if longer than a block)
	 * padded with zeros to a block. */
	uint8_t k0[SHA256_BLOCK_LEN], pad[SHA256_BLOCK_LEN];
	int i;

	memset(k0, 0, sizeof k0);
	if (keylen > SHA256_BLOCK_LEN)
		sha256(key, keylen, k0);
	else if (keylen > 0)
		memcpy(k0, key, keylen);
	for (i = 0; i < SHA256_BLOCK_LEN; i++)
		pad[i] = (uint8_t)(k0[i] ^ HMAC_IPAD);
	sha256_init(&c->inner);
	sha256_update(&c->inner, pad, sizeof pad);
	for (i = 0; i < SHA256_BLOCK_LEN; i++)
		pad[i] = (uint8_t)(k0[i] ^ HMAC_OPAD);
	sha256_init(&c->outer);
	sha256_update(&c->outer, pad, sizeof pad);
	explicit_bzero(k0, sizeof k0);
	explicit_bzero(pad, sizeof pad);
}

void hmac_sha256_update(hmac_sha256_ctx *c, const void *data, size_t len)
{
	sha256_update(&c->inner, data, len);
}

void hmac_sha256_final(hmac_sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN])
{
	uint8_t inner[SHA256_DIGEST_LEN];

	sha256_final(&c->inner, inner);
	sha256_update(&c->outer, inner, sizeof inner);
	sha256_final(&c->outer, out);
	explicit_bzero(inner, sizeof inner);
}

void hmac_sha256(const void *key, size_t keylen, const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN])
{
	hmac_sha256_ctx c;

	hmac_sha256_init(&c, key, keylen);
	hmac_sha256_update(&c, data, len);
	hmac_sha256_final(&c, out);
}

bool sha256_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	/* Every byte is read whatever the others hold; volatile keeps the
	 * compiler from stopping at the first difference. */
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < len; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff == 0;
}
