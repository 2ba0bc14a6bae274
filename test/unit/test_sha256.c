/* test_sha256.c: unit tests of SHA-256 and HMAC-SHA256 (sidecar/sha256.c) against the published vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sha256.h"

/*
 * The digests are those published with the standards: FIPS 180-2's
 * appendix B and NIST's example values for SHA-256, RFC 4231 section 4 for
 * HMAC-SHA256. The two chain tests' digests come from another, independent
 * implementation (Python's hashlib and hmac modules).
 */

/* Turns a hex string into bytes; the length must be even. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2, i;

	assert_int_equal(strlen(hex) % 2, 0);
	assert_true(n <= cap);
	for (i = 0; i < n; i++) {
		char byte[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
		char *end;

		out[i] = (uint8_t)strtoul(byte, &end, 16);
		assert_ptr_equal(end, byte + 2);
	}
	return n;
}

static void assert_digest(const uint8_t *got, const char *want_hex, size_t len)
{
	uint8_t want[SHA256_DIGEST_LEN];

	assert_int_equal(unhex(want_hex, want, sizeof want), SHA256_DIGEST_LEN);
	assert_memory_equal(got, want, len);
}

/* ---- SHA-256 ------------------------------------------------------------ */

typedef struct sha_vector {
	const char *msg;
	const char *digest;
} sha_vector;

static const sha_vector sha_vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    /* 448 bits: the padding does not fit, and takes a second block. */
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    /* 896 bits: two blocks less 128 bits. */
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrs"
     "t"
     "nopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

#define MILLION_A_DIGEST "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define MILLION_A_LEN    1000000

static void test_sha256_vectors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof sha_vectors / sizeof sha_vectors[0]; i++) {
		const sha_vector *v = &sha_vectors[i];
		uint8_t out[SHA256_DIGEST_LEN];

		sha256(v->msg, strlen(v->msg), out);
		assert_digest(out, v->digest, SHA256_DIGEST_LEN);
	}
}

static void test_sha256_byte_at_a_time(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof sha_vectors / sizeof sha_vectors[0]; i++) {
		const sha_vector *v = &sha_vectors[i];
		uint8_t out[SHA256_DIGEST_LEN];
		sha256_ctx c;

		sha256_init(&c);
		for (j = 0; v->msg[j] != '\0'; j++) {
			sha256_update(&c, v->msg + j, 1);
			sha256_update(&c, NULL, 0); /* empty updates change nothing */
		}
		sha256_final(&c, out);
		assert_digest(out, v->digest, SHA256_DIGEST_LEN);
	}
}

/* One million 'a' in one call, and in chunks that land on every buffering
 * case: into a partial block, filling one exactly, and across blocks. */
static void test_sha256_million_a(void **state)
{
	static const size_t chunks[] = {1, 63, 64, 65, 1000, 127, 128, 129, 3};
	uint8_t *msg = malloc(MILLION_A_LEN);
	uint8_t out[SHA256_DIGEST_LEN];
	size_t off, k;
	sha256_ctx c;

	(void)state;
	assert_non_null(msg);
	memset(msg, 'a', MILLION_A_LEN);
	sha256(msg, MILLION_A_LEN, out);
	assert_digest(out, MILLION_A_DIGEST, SHA256_DIGEST_LEN);

	sha256_init(&c);
	for (off = 0, k = 0; off < MILLION_A_LEN; k++) {
		size_t n = chunks[k % (sizeof chunks / sizeof chunks[0])];

		if (n > MILLION_A_LEN - off)
			n = MILLION_A_LEN - off;
		sha256_update(&c, msg + off, n);
		off += n;
	}
	sha256_final(&c, out);
	assert_digest(out, MILLION_A_DIGEST, SHA256_DIGEST_LEN);
	free(msg);
}

/* Every length from 0 to 199 (all padding cases of up to four blocks) of
 * the message 00 01 02 ...: the digest of their digests, concatenated. */
#define LEN_CHAIN_MAX    200
#define LEN_CHAIN_DIGEST "ba7b0fcea7d10c06b855b43d2b4dce1e3e842fff6be0acefb0faf4f2dd05bb47"

static void test_sha256_every_length(void **state)
{
	uint8_t msg[LEN_CHAIN_MAX], out[SHA256_DIGEST_LEN], d[SHA256_DIGEST_LEN];
	sha256_ctx chain;
	size_t n, split;

	(void)state;
	for (n = 0; n < LEN_CHAIN_MAX; n++)
		msg[n] = (uint8_t)n;
	sha256_init(&chain);
	for (n = 0; n < LEN_CHAIN_MAX; n++) {
		sha256(msg, n, d);
		sha256_update(&chain, d, sizeof d);
		/* The same message split in two anywhere gives the same digest. */
		for (split = 0; split <= n; split++) {
			sha256_ctx c;

			sha256_init(&c);
			sha256_update(&c, msg, split);
			sha256_update(&c, msg + split, n - split);
			sha256_final(&c, out);
			assert_memory_equal(out, d, sizeof d);
		}
	}
	sha256_final(&chain, out);
	assert_digest(out, LEN_CHAIN_DIGEST, SHA256_DIGEST_LEN);
}

/* ---- HMAC-SHA256 -------------------------------------------------------- */

typedef struct hmac_vector {
	const char *key;  /* hex */
	const char *data; /* hex */
	const char *mac;  /* hex; may be truncated */
} hmac_vector;

#define HEX_AA_131                                                                                           \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aa"                                                                                                 \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
	"aa"                                                                                                 \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_DD_50                                                                                            \
	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"dd"
#define HEX_CD_50                                                                                            \
	"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd" \
	"cd"

/* RFC 4231, section 4, test cases 1 to 7. */
static const hmac_vector hmac_vectors[] = {
    /* 1: "Hi There" */
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    /* 2: key "Jefe", "what do ya want for nothing?" */
    {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    /* 3 */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", HEX_DD_50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    /* 4 */
    {"0102030405060708090a0b0c0d0e0f10111213141516171819", HEX_CD_50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
    /* 5: "Test With Truncation", the MAC truncated to 128 bits */
    {"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b"},
    /* 6: "Test Using Larger Than Block-Size Key - Hash Key First" */
    {HEX_AA_131,
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b65792046"
     "69727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    /* 7: "This is a test using a larger than block-size key and a larger
     * than block-size data. The key needs to be hashed before being used
     * by the HMAC algorithm." */
    {HEX_AA_131,
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b6579"
     "20616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565"
     "647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c"
     "676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

#define HMAC_MAX_KEY  131
#define HMAC_MAX_DATA 152

static void test_hmac_rfc4231(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof hmac_vectors / sizeof hmac_vectors[0]; i++) {
		const hmac_vector *v = &hmac_vectors[i];
		uint8_t key[HMAC_MAX_KEY], data[HMAC_MAX_DATA], out[SHA256_DIGEST_LEN];
		size_t keylen = unhex(v->key, key, sizeof key);
		size_t datalen = unhex(v->data, data, sizeof data);
		size_t maclen = strlen(v->mac) / 2;
		char want[2 * SHA256_DIGEST_LEN + 1];
		hmac_sha256_ctx c;

		/* assert_digest wants the whole 32 bytes' hex: pad a truncated
		 * MAC with zeros and compare only its length. */
		memset(want, '0', sizeof want - 1);
		want[sizeof want - 1] = '\0';
		memcpy(want, v->mac, strlen(v->mac));

		hmac_sha256(key, keylen, data, datalen, out);
		assert_digest(out, want, maclen);

		hmac_sha256_init(&c, key, keylen);
		for (j = 0; j < datalen; j++)
			hmac_sha256_update(&c, data + j, 1);
		hmac_sha256_final(&c, out);
		assert_digest(out, want, maclen);
	}
}

/* Keys of every length from 0 to 139 bytes (80 81 82 ...), across the
 * 64-byte point where a key starts being hashed first: the digest of the
 * MACs of one message, concatenated. */
#define KEY_CHAIN_MAX    140
#define KEY_CHAIN_MSG    "tsoracle peer handshake"
#define KEY_CHAIN_DIGEST "d087abb0ac5b2df1fcc42737853da0fccda6ab6ddc7b86c9b844c6567df25abe"

static void test_hmac_every_key_length(void **state)
{
	uint8_t key[KEY_CHAIN_MAX], mac[SHA256_DIGEST_LEN], out[SHA256_DIGEST_LEN];
	sha256_ctx chain;
	size_t n;

	(void)state;
	for (n = 0; n < KEY_CHAIN_MAX; n++)
		key[n] = (uint8_t)(0x80 + n);
	sha256_init(&chain);
	for (n = 0; n < KEY_CHAIN_MAX; n++) {
		hmac_sha256(key, n, KEY_CHAIN_MSG, strlen(KEY_CHAIN_MSG), mac);
		sha256_update(&chain, mac, sizeof mac);
	}
	sha256_final(&chain, out);
	assert_digest(out, KEY_CHAIN_DIGEST, SHA256_DIGEST_LEN);
}

/* ---- sha256_equal ------------------------------------------------------- */

static void test_equal(void **state)
{
	uint8_t a[SHA256_DIGEST_LEN], b[SHA256_DIGEST_LEN];

	(void)state;
	sha256("abc", 3, a);
	memcpy(b, a, sizeof b);
	assert_true(sha256_equal(a, b, sizeof a));
	assert_true(sha256_equal(a, b, 0));

	b[0] ^= 0x01;
	assert_false(sha256_equal(a, b, sizeof a));
	b[0] ^= 0x01;

	b[sizeof b - 1] ^= 0x80;
	assert_false(sha256_equal(a, b, sizeof a));
	/* A difference past len is not looked at. */
	assert_true(sha256_equal(a, b, sizeof a - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_vectors),
	    cmocka_unit_test(test_sha256_byte_at_a_time),
	    cmocka_unit_test(test_sha256_million_a),
	    cmocka_unit_test(test_sha256_every_length),
	    cmocka_unit_test(test_hmac_rfc4231),
	    cmocka_unit_test(test_hmac_every_key_length),
	    cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
