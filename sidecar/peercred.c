/* peercred.c: who may use the local socket: its owner, root, and the users and groups client-socket-allow
 * names. */
#define _GNU_SOURCE /* struct ucred */
#include "peercred.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"

#define PC_ENTRY_SIZE 64 /* bytes of one user or group name */

/* A numeric id, or -1 if text is not one. */
static long long pc_number(const char *text)
{
	char *end;
	long long v;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || (long long)(uid_t)v != v)
		return -1;
	return v;
}

static int pc_add_group(pc_allow *a, const char *name, char *err, size_t errlen)
{
	long long num = pc_number(name);
	struct group *g = num >= 0 ? getgrgid((gid_t)num) : getgrnam(name);

	if (a->n_gids == PC_MAX_ENTRIES)
		return err_set(err, errlen, "client-socket-allow: more than %d entries", PC_MAX_ENTRIES);
	if (g == NULL && num < 0)
		return err_set(err, errlen, "client-socket-allow: no group named \"%s\"", name);
	a->gids[a->n_gids++] = num >= 0 ? (gid_t)num : g->gr_gid;
	if (g == NULL)
		return 0; /* a numeric gid with no entry: its primary members only */
	for (char **m = g->gr_mem; *m != NULL; m++) {
		struct passwd *pw = getpwnam(*m);

		if (pw == NULL)
			continue; /* a member name with no user: nobody to admit */
		if (a->n_members == PC_MAX_MEMBERS)
			return err_set(err, errlen,
				       "client-socket-allow: groups with more than %d members in all",
				       PC_MAX_MEMBERS);
		a->members[a->n_members++] = pw->pw_uid;
	}
	return 0;
}

static int pc_add_user(pc_allow *a, const char *name, char *err, size_t errlen)
{
	long long num = pc_number(name);
	struct passwd *pw;

	if (a->n_uids == PC_MAX_ENTRIES)
		return err_set(err, errlen, "client-socket-allow: more than %d entries", PC_MAX_ENTRIES);
	if (num >= 0) {
		a->uids[a->n_uids++] = (uid_t)num;
		return 0;
	}
	pw = getpwnam(name);
	if (pw == NULL)
		return err_set(err, errlen, "client-socket-allow: no user named \"%s\" (a group is @name)",
			       name);
	a->uids[a->n_uids++] = pw->pw_uid;
	return 0;
}

int pc_allow_parse(pc_allow *a, const char *spec, char *err, size_t errlen)
{
	const char *p = spec;

	memset(a, 0, sizeof *a);
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		char entry[PC_ENTRY_SIZE];
		int rc;

		if (len == 0 || len >= sizeof entry)
			return err_set(err, errlen,
				       "client-socket-allow: bad entry in \"%s\" (expected user,@group,...)",
				       spec);
		memcpy(entry, p, len);
		entry[len] = '\0';
		if (entry[0] == '@')
			rc = pc_add_group(a, entry + 1, err, errlen);
		else
			rc = pc_add_user(a, entry, err, errlen);
		if (rc != 0)
			return -1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

bool pc_allowed(const pc_allow *a, uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == geteuid())
		return true;
	for (unsigned i = 0; i < a->n_uids; i++)
		if (a->uids[i] == uid)
			return true;
	for (unsigned i = 0; i < a->n_gids; i++)
		if (a->gids[i] == gid)
			return true;
	for (unsigned i = 0; i < a->n_members; i++)
		if (a->members[i] == uid)
			return true;
	return false;
}

int pc_peer(int fd, uid_t *uid, gid_t *gid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -1;
	*uid = cred.uid;
	*gid = cred.gid;
	return 0;
}
