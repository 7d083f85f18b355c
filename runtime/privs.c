/* slate: privilege phases (see privs.h). */
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "privs.h"

const cap_value_t slate_master_caps[] = { CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,          CAP_SETGID,
					  CAP_SETUID, CAP_KILL,         CAP_NET_BIND_SERVICE };
const int slate_master_ncaps = sizeof(slate_master_caps) / sizeof(slate_master_caps[0]);

/* Invariant: after this, uid/gid 0 inside the instance's namespace; the
 * capabilities that come with it are scoped to that namespace, which owns
 * nothing (mounts, network, pids, hostname all belong to the host's). */
int privs_enter_userns(int userns_fd, slate_error_t *err)
{
	if (setns(userns_fd, CLONE_NEWUSER) < 0)
		return slate_error_sys(err, errno, "join the instance user namespace");
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		return slate_error_sys(err, errno, "become the instance's root");
	if (setgroups(0, NULL) < 0)
		return slate_error_sys(err, errno, "clear supplementary groups");
	return 0;
}

static bool keep(const struct identity *id, cap_value_t c)
{
	for (int i = 0; i < id->ncaps; i++)
		if (id->caps[i] == c)
			return true;
	return false;
}

/* Bounding set first: once a capability leaves it, no execve and no
 * setuid can bring it back. */
static int drop_bounding(const struct identity *id, slate_error_t *err)
{
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (keep(id, c) || !CAP_IS_SUPPORTED(c))
			continue;
		if (cap_drop_bound(c) < 0)
			return slate_error_sys(err, errno, "drop capability %d from the bounding set", (int)c);
	}
	return 0;
}

static int set_caps(const struct identity *id, slate_error_t *err)
{
	cap_t caps = cap_init();
	int r = 0;

	if (caps == NULL)
		return slate_error_sys(err, errno, "cap_init");
	if (id->ncaps > 0 && (cap_set_flag(caps, CAP_PERMITTED, id->ncaps, id->caps, CAP_SET) < 0 ||
			      cap_set_flag(caps, CAP_EFFECTIVE, id->ncaps, id->caps, CAP_SET) < 0))
		r = slate_error_sys(err, errno, "cap_set_flag");
	if (r == 0 && cap_set_proc(caps) < 0)
		r = slate_error_sys(err, errno, "set capabilities");
	cap_free(caps);
	if (r == 0 && cap_reset_ambient() < 0)
		r = slate_error_sys(err, errno, "clear ambient capabilities");
	return r;
}

/* Re-check what was asked: the kernel's view, not our bookkeeping. */
static int verify(const struct identity *id, slate_error_t *err)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	cap_t caps = cap_get_proc();
	cap_flag_value_t v = CAP_CLEAR;
	int ok = caps != NULL;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 || r != id->uid || e != id->uid || s != id->uid ||
	    rg != id->gid || eg != id->gid || sg != id->gid)
		ok = 0;
	for (cap_value_t c = 0; ok && c <= CAP_LAST_CAP; c++) {
		if (!CAP_IS_SUPPORTED(c))
			continue;
		if (cap_get_flag(caps, c, CAP_INHERITABLE, &v) < 0 || v == CAP_SET)
			ok = 0;
		if (ok && !keep(id, c) && (cap_get_flag(caps, c, CAP_PERMITTED, &v) < 0 || v == CAP_SET))
			ok = 0;
		if (ok && !keep(id, c) && cap_get_bound(c) != 0)
			ok = 0;
	}
	cap_free(caps);
	if (ok && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		ok = 0;
	return ok ? 0 : slate_error_fail(err, "privileges not dropped as asked (uid %u)", (unsigned)id->uid);
}

int privs_drop(const struct identity *id, slate_error_t *err)
{
	gid_t groups[1] = { id->gid };

	if (drop_bounding(id, err) < 0)
		return -1;
	/* Keep the permitted set across setresuid only if we keep caps at all. */
	if (prctl(PR_SET_KEEPCAPS, id->ncaps > 0 ? 1 : 0, 0, 0, 0) < 0)
		return slate_error_sys(err, errno, "PR_SET_KEEPCAPS");
	if (setgroups(1, groups) < 0)
		return slate_error_sys(err, errno, "setgroups");
	if (setresgid(id->gid, id->gid, id->gid) < 0)
		return slate_error_sys(err, errno, "setresgid %u", (unsigned)id->gid);
	if (setresuid(id->uid, id->uid, id->uid) < 0)
		return slate_error_sys(err, errno, "setresuid %u", (unsigned)id->uid);
	if (set_caps(id, err) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return slate_error_sys(err, errno, "PR_SET_NO_NEW_PRIVS");
	return verify(id, err);
}

int privs_not_dumpable(slate_error_t *err)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return slate_error_sys(err, errno, "PR_SET_DUMPABLE");
	return 0;
}
