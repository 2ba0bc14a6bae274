/* ratelog.c: warnings about refused connections, rate-limited per kind and in all (see ratelog.h). */
#include "ratelog.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

void ratelog_init(ratelog *r, const char *what, uint64_t interval_ms)
{
	memset(r, 0, sizeof *r);
	r->what = what;
	r->interval_ms = interval_ms;
}

int ratelog_level(ratelog *r, uint64_t now, const char *source, const char *why, unsigned *quieted)
{
	ratelog_slot *slot = NULL, *oldest = &r->slot[0];
	char key[RATELOG_KEY_SIZE];

	*quieted = 0;
	snprintf(key, sizeof key, "%.63s|%.127s", source, why); /* fits RATELOG_KEY_SIZE */
	for (int i = 0; i < RATELOG_SLOTS; i++) {
		ratelog_slot *s = &r->slot[i];

		if (s->used && strcmp(s->key, key) == 0)
			slot = s;
		if (!s->used || (oldest->used && s->at < oldest->at))
			oldest = s;
	}
	if (slot != NULL && now - slot->at < r->interval_ms) {
		slot->quieted++;
		return LOG_DEBUG;
	}
	if (now - r->burst_at >= r->interval_ms) {
		r->burst_at = now;
		r->burst = 0;
	}
	if (r->burst >= RATELOG_BURST) {
		r->quieted++;
		return LOG_DEBUG;
	}
	r->burst++;
	if (slot == NULL) {
		slot = oldest;
		snprintf(slot->key, sizeof slot->key, "%s", key);
		slot->used = true;
		slot->quieted = 0;
	}
	*quieted = slot->quieted;
	slot->at = now;
	slot->quieted = 0;
	if (r->quieted > 0) {
		log_warn("%u more refused %s of other kinds were logged at debug level", r->quieted, r->what);
		r->quieted = 0;
	}
	return LOG_WARN;
}
