/*-------------------------------------------------------------------------
 *
 * worker_trust.c
 *		Whom the tsoracle worker trusts as its sidecar on a unix socket.
 *
 * Any local user can bind a unix socket at a path nobody holds yet, or
 * replace one in a directory it may write, and then answer the worker like
 * a sidecar: hand out duplicates, or one grant near 2^63 that makes every
 * later genuine grant look "backward". So before the worker trusts a unix
 * socket it checks who could have put it there, and after connecting, who
 * listens on it. A trusted user is this server's own user (the one it runs
 * as), root, or the user named in tsoracle.sidecar_user (the sidecar may
 * run as a user of its own). The checks:
 *
 *	1. the socket (after symbolic links) is a socket owned by a trusted user;
 *	2. every directory from the socket's up to "/" is owned by a trusted
 *	   user, and none is writable by every user unless it has the sticky
 *	   bit (like /tmp: there only the owner of an entry may remove or rename
 *	   it). Otherwise an untrusted user could move the genuine socket aside
 *	   and put its own in its place between the check and the connect. A
 *	   directory writable by its group is accepted: its group is a set of
 *	   users the administrator chose (Debian's /var/run/postgresql is
 *	   postgres:postgres 2775);
 *	3. after connecting, the credentials of the process listening on the
 *	   socket (SO_PEERCRED on Linux, through PostgreSQL's getpeereid()): its
 *	   user must be trusted. This one closes every race of 1 and 2, which
 *	   remain for the message (they name the path and its owner) and for
 *	   platforms whose kernel does not tell (getpeereid() fails with ENOSYS;
 *	   then 1 and 2 are the whole check).
 * A refusal is a connection failure like any other: the worker logs it,
 * keeps it as its last error (backends quote it in the DETAIL of their
 * 08006) and tries again with backoff, so a socket fixed by its owner is
 * used without a reload.
 *
 * src/worker_trust.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker.h"

/* "name (uid N)" or "uid N" for messages. */
static void
worker_uid_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(buf, len, "%s (uid %u)", pw->pw_name, (unsigned) uid);
	else
		snprintf(buf, len, "uid %u", (unsigned) uid);
}

/*
 * Resolves tsoracle.sidecar_user: a user name or a numeric uid. "" names
 * nobody (*uid is then left alone). On failure writes a sentence to err.
 */
bool
worker_resolve_user(const char *text, uid_t *uid, bool *set, char *err,
					size_t errlen)
{
	const char *p;
	struct passwd *pw;

	*set = false;
	if (text == NULL || text[0] == '\0')
		return true;
	for (p = text; isdigit((unsigned char) *p); p++)
		;
	if (*p == '\0' && p - text <= 9)
	{
		*uid = (uid_t) strtoul(text, NULL, 10);
		*set = true;
		return true;
	}
	pw = getpwnam(text);
	if (pw == NULL)
	{
		snprintf(err, errlen, "No user named \"%s\" exists on this machine.",
				 text);
		return false;
	}
	*uid = pw->pw_uid;
	*set = true;
	return true;
}

/* Whether uid may hold the sidecar's socket: see the header comment. */
static bool
worker_uid_trusted(uid_t uid, const char *sidecar_user)
{
	uid_t		other = 0;
	bool		set = false;
	char		err[128];

	if (uid == geteuid() || uid == 0)
		return true;
	/* the check hook accepted the setting; a user deleted since is none */
	if (!worker_resolve_user(sidecar_user, &other, &set, err, sizeof(err)))
		return false;
	return set && uid == other;
}

/* Describes who is trusted, for a refusal: "postgres (uid 101), root". */
static void
worker_trusted_names(const char *sidecar_user, char *buf, size_t len)
{
	char		me[64];

	worker_uid_name(geteuid(), me, sizeof(me));
	if (sidecar_user != NULL && sidecar_user[0] != '\0')
		snprintf(buf, len, "this server's user %s, root or tsoracle.sidecar_user (\"%s\")",
				 me, sidecar_user);
	else
		snprintf(buf, len, "this server's user %s or root; set tsoracle.sidecar_user if tsoracled runs as another user",
				 me);
}

/*
 * Checks 1 and 2 of the header comment for the socket at path, before
 * connecting. A path that does not resolve passes: connect() then fails
 * with the reason ("No such file or directory"), and nothing was trusted.
 * On refusal writes a sentence naming the path and its owner to err.
 */
bool
worker_check_socket_path(const char *path, const char *sidecar_user,
						 char *err, size_t errlen)
{
	char		real[PATH_MAX];	/* realpath() writes up to PATH_MAX */
	char		who[64];
	char		trusted[256];
	struct stat st;
	char	   *slash;

	if (realpath(path, real) == NULL || stat(real, &st) != 0)
		return true;

	worker_trusted_names(sidecar_user, trusted, sizeof(trusted));
	if (!S_ISSOCK(st.st_mode))
	{
		snprintf(err, errlen, "refused \"%s\": it is not a socket", path);
		return false;
	}
	if (!worker_uid_trusted(st.st_uid, sidecar_user))
	{
		worker_uid_name(st.st_uid, who, sizeof(who));
		snprintf(err, errlen, "refused \"%s\": the socket is owned by %s, not by %s",
				 path, who, trusted);
		return false;
	}

	/* every directory from the socket's up to the root */
	for (;;)
	{
		slash = strrchr(real, '/');
		if (slash == NULL)
			break;
		if (slash == real)
			slash[1] = '\0';	/* "/" itself */
		else
			*slash = '\0';
		if (stat(real, &st) != 0)
			return true;		/* vanished: connect() will say */
		if (!worker_uid_trusted(st.st_uid, sidecar_user))
		{
			worker_uid_name(st.st_uid, who, sizeof(who));
			snprintf(err, errlen, "refused \"%s\": its directory \"%s\" is owned by %s, not by %s",
					 path, real, who, trusted);
			return false;
		}
		if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		{
			snprintf(err, errlen, "refused \"%s\": its directory \"%s\" (mode %04o) is writable by every user and has no sticky bit, so anyone could replace the socket",
					 path, real, (unsigned) (st.st_mode & 07777));
			return false;
		}
		if (slash == real)
			break;
	}
	return true;
}

/*
 * Check 3 of the header comment, on a connected unix socket: the user of
 * the process listening on it. Passes where the kernel does not tell.
 */
bool
worker_check_socket_peer(pgsocket sock, const char *path,
						 const char *sidecar_user, char *err, size_t errlen)
{
	uid_t		uid;
	gid_t		gid;
	char		who[64];
	char		trusted[256];

	if (getpeereid(sock, &uid, &gid) != 0)
	{
		if (errno == ENOSYS)
			return true;
		snprintf(err, errlen, "could not get the credentials of the process listening on \"%s\": %m",
				 path);
		return false;
	}
	if (worker_uid_trusted(uid, sidecar_user))
		return true;
	worker_uid_name(uid, who, sizeof(who));
	worker_trusted_names(sidecar_user, trusted, sizeof(trusted));
	snprintf(err, errlen, "refused \"%s\": the process listening on it runs as %s, not as %s",
			 path, who, trusted);
	return false;
}
