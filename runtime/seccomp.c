/* slate: compile a seccomp profile with libseccomp, cache the program,
 * install it (see seccomp.h for the profile format). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/seccomp.h>
#include <seccomp.h>
#ifndef SCMP_VER_MAJOR
#error "<seccomp.h> found runtime/seccomp.h, not libseccomp's: build runtime/*.c without -Iruntime"
#endif

#include "seccomp.h"
#include "slate/json.h"
#include "slate/util.h"

#define PROFILE_MAX (1024 * 1024)
#define MAX_LIST 64 /* values in one "value" list or "unless" */
#define MAX_EXPANDED 4096 /* libseccomp rules one profile may expand to */
#define ARCH_LIST "x86_64,x32,x86" /* every ABI of an x86_64 kernel; part of the cache key */

extern const char slate_seccomp_profile_start[];
extern const char slate_seccomp_profile_end[];

const char *slate_seccomp_default_profile(size_t *len)
{
	*len = (size_t)(slate_seccomp_profile_end - slate_seccomp_profile_start);
	return slate_seccomp_profile_start;
}

static void cleanup_seccompp(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define cleanup_seccomp __attribute__((cleanup(cleanup_seccompp)))

static void cleanup_jsonp(json_t **j)
{
	json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(cleanup_jsonp)))

/* ---- profile values ---- */

static const struct {
	const char *name;
	uint32_t token;
} arches[] = {
	{ "x86_64", SCMP_ARCH_X86_64 },
	{ "x32", SCMP_ARCH_X32 },
	{ "x86", SCMP_ARCH_X86 },
};
#define N_ARCHES (sizeof(arches) / sizeof(arches[0]))

static const struct {
	const char *name;
	int num;
} errnos[] = {
	{ "EPERM", EPERM },
	{ "ENOENT", ENOENT },
	{ "EIO", EIO },
	{ "EBADF", EBADF },
	{ "EACCES", EACCES },
	{ "EFAULT", EFAULT },
	{ "EINVAL", EINVAL },
	{ "ENOTTY", ENOTTY },
	{ "ENOSYS", ENOSYS },
	{ "EOPNOTSUPP", EOPNOTSUPP },
	{ "ENOTSUP", ENOTSUP },
	{ "EPROTONOSUPPORT", EPROTONOSUPPORT },
	{ "EAFNOSUPPORT", EAFNOSUPPORT },
};

static const struct {
	const char *name;
	enum scmp_compare op;
} ops[] = {
	{ "eq", SCMP_CMP_EQ },
	{ "ne", SCMP_CMP_NE },
	{ "lt", SCMP_CMP_LT },
	{ "le", SCMP_CMP_LE },
	{ "gt", SCMP_CMP_GT },
	{ "ge", SCMP_CMP_GE },
	{ "masked_eq", SCMP_CMP_MASKED_EQ },
};

/* Whether a syscall name exists on an architecture. libseccomp resolves
 * names that an architecture lacks to pseudo numbers (<= -10000), except
 * that on x86 the socket and SysV IPC calls resolve to the pseudo numbers
 * of their multiplexed forms (__PNR_socket -101 .. __PNR_shmctl -224):
 * there a rule covers both the direct syscall and the socketcall/ipc
 * subcall. */
static bool x86_multiplexed(const char *name)
{
	int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86, name);

	return nr <= __PNR_socket && nr >= __PNR_shmctl;
}

static bool on_arch(size_t arch, const char *name)
{
	if (arches[arch].token == SCMP_ARCH_X86 && x86_multiplexed(name))
		return true;
	return seccomp_syscall_resolve_name_arch(arches[arch].token, name) >= 0;
}

/* A 64-bit number: a non-negative JSON integer, or a string in C syntax. */
static int parse_u64(const json_t *v, uint64_t *out, const char *what, slate_error_t *err)
{
	const char *s;
	char *end = NULL;

	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return slate_error_refuse(err, "%s: not a number", what);
	s = json_string_value(v);
	errno = 0;
	if (s[0] >= '0' && s[0] <= '9')
		*out = strtoull(s, &end, 0);
	if (end == NULL || end == s || *end != '\0' || errno != 0)
		return slate_error_refuse(err, "%s: `%s` is not a number", what, s);
	return 0;
}

static int parse_errno(const json_t *v, int *out, const char *what, slate_error_t *err)
{
	if (json_is_string(v)) {
		for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
			if (strcmp(errnos[i].name, json_string_value(v)) == 0)
				return *out = errnos[i].num, 0;
		return slate_error_refuse(err, "%s: unknown errno `%s`", what, json_string_value(v));
	}
	if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 4095)
		return *out = (int)json_integer_value(v), 0;
	return slate_error_refuse(err, "%s: `errno` must be a name such as \"EPERM\" or a number 1..4095", what);
}

/* {"action": ..., "errno": ...} of obj, whose other keys the caller checked. */
static int parse_action(const json_t *obj, uint32_t *out, const char *what, slate_error_t *err)
{
	const char *name = NULL;
	json_t *e = json_object_get(obj, "errno");
	int num = 0;

	if (slate_json_get_string(obj, "action", false, &name, what, err) < 0)
		return -1;
	if (strcmp(name, "errno") == 0) {
		if (e == NULL)
			return slate_error_refuse(err, "%s: action \"errno\" needs an `errno`", what);
		if (parse_errno(e, &num, what, err) < 0)
			return -1;
		*out = SCMP_ACT_ERRNO((uint32_t)num);
		return 0;
	}
	if (e != NULL)
		return slate_error_refuse(err, "%s: `errno` is only for action \"errno\"", what);
	if (strcmp(name, "allow") == 0)
		*out = SCMP_ACT_ALLOW;
	else if (strcmp(name, "kill") == 0)
		*out = SCMP_ACT_KILL_PROCESS;
	else if (strcmp(name, "trap") == 0)
		*out = SCMP_ACT_TRAP;
	else if (strcmp(name, "log") == 0)
		*out = SCMP_ACT_LOG;
	else
		return slate_error_refuse(err, "%s: unknown action `%s`", what, name);
	return 0;
}

/* ---- the compiler's state ---- */

struct seen {
	int nr;
	uint32_t action;
	bool unconditional;
};

/* The filter is built as one libseccomp context per group of ABIs and
 * merged at the end: x86_64 (with x32 when its rules apply), x86 when its
 * rules apply (conditions on multiplexed calls are left out there), and
 * the refused ABIs, which get no rules at all. */
enum { GROUP_NATIVE, GROUP_X86, GROUP_REFUSED, N_GROUPS };

struct compiler {
	scmp_filter_ctx ctx[N_GROUPS];
	uint32_t def_action;
	bool rules_on[N_ARCHES];
	struct slate_strv refuse;
	struct seen *seen;
	size_t n_seen, cap_seen;
	size_t n_expanded;
};

/* One rule's comparisons: fixed ones, plus at most one list of alternatives
 * (a "value" list, or the cubes of an "unless"), one of which is added to
 * the fixed ones in each libseccomp rule. */
struct rule_args {
	struct scmp_arg_cmp fixed[6];
	unsigned n_fixed;
	bool used[6];
	struct scmp_arg_cmp alt[MAX_LIST * 64];
	size_t n_alt;
};

static void compiler_free(struct compiler *c)
{
	for (int g = 0; g < N_GROUPS; g++) {
		if (c->ctx[g])
			seccomp_release(c->ctx[g]);
		c->ctx[g] = NULL;
	}
	slate_strv_free(&c->refuse);
	free(c->seen);
	c->seen = NULL;
}

static int parse_arg_index(const json_t *obj, unsigned *arg, bool *used, const char *what, slate_error_t *err)
{
	int64_t a = -1;

	if (slate_json_get_int(obj, "arg", false, &a, what, err) < 0)
		return -1;
	if (a > 5)
		return slate_error_refuse(err, "%s: `arg` must be 0..5", what);
	if (used[a])
		return slate_error_refuse(err,
					  "%s: a second comparison on argument %" PRId64
					  " (libseccomp allows one per argument in a rule)",
					  what, a);
	used[a] = true;
	*arg = (unsigned)a;
	return 0;
}

/* A comparison's value: libseccomp wants it in datum_a, except for
 * masked_eq (mask in datum_a, value in datum_b). */
static int parse_value(const json_t *v, struct scmp_arg_cmp *cmp, const char *what, slate_error_t *err)
{
	uint64_t n = 0;

	if (parse_u64(v, &n, what, err) < 0)
		return -1;
	if (cmp->op != SCMP_CMP_MASKED_EQ) {
		cmp->datum_a = n;
		return 0;
	}
	if (n & ~cmp->datum_a)
		return slate_error_refuse(err, "%s: value 0x%" PRIx64 " has bits outside the mask: it never matches",
					  what, n);
	cmp->datum_b = n;
	return 0;
}

/* One element of "args". */
static int parse_cmp(const json_t *obj, struct rule_args *ra, const char *what, slate_error_t *err)
{
	static const char *const keys[] = { "comment", "arg", "op", "value", "mask", NULL };
	const char *opname = NULL;
	json_t *value = json_object_get(obj, "value"), *mask = json_object_get(obj, "mask"), *item;
	struct scmp_arg_cmp cmp = { 0 };
	size_t i, n_ops = sizeof(ops) / sizeof(ops[0]);

	if (slate_json_known_keys(obj, keys, what, err) < 0 ||
	    parse_arg_index(obj, &cmp.arg, ra->used, what, err) < 0 ||
	    slate_json_get_string(obj, "op", false, &opname, what, err) < 0)
		return -1;
	for (i = 0; i < n_ops && strcmp(ops[i].name, opname) != 0; i++)
		;
	if (i == n_ops)
		return slate_error_refuse(err, "%s: unknown op `%s`", what, opname);
	cmp.op = ops[i].op;
	if ((cmp.op == SCMP_CMP_MASKED_EQ) != (mask != NULL))
		return slate_error_refuse(err, "%s: `mask` goes with op \"masked_eq\", and only with it", what);
	if (mask && parse_u64(mask, &cmp.datum_a, what, err) < 0)
		return -1;
	if (value == NULL)
		return slate_error_refuse(err, "%s: missing `value`", what);
	if (!json_is_array(value)) {
		if (parse_value(value, &cmp, what, err) < 0)
			return -1;
		ra->fixed[ra->n_fixed++] = cmp;
		return 0;
	}
	if (cmp.op != SCMP_CMP_EQ && cmp.op != SCMP_CMP_MASKED_EQ)
		return slate_error_refuse(err, "%s: a list of values needs op \"eq\" or \"masked_eq\"", what);
	if (ra->n_alt > 0)
		return slate_error_refuse(err, "%s: only one list of alternatives (a value list or `unless`) per rule",
					  what);
	if (json_array_size(value) == 0 || json_array_size(value) > MAX_LIST)
		return slate_error_refuse(err, "%s: `value` lists take 1..%d numbers", what, MAX_LIST);
	json_array_foreach (value, i, item) {
		struct scmp_arg_cmp alt = cmp;
		if (parse_value(item, &alt, what, err) < 0)
			return -1;
		ra->alt[ra->n_alt++] = alt;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Append the cubes {x : (x & pmask) == pval} whose union is every x that
 * extends the prefix (pmask, pval) and whose masked value is none of
 * vals[0..n) (sorted, all extending the prefix). Walks mask's bits from the
 * top: where the excluded values split, the side holding none of them is
 * one cube; a side holding some is refined further. */
static void complement_cubes(uint64_t mask, int bit, uint64_t pmask, uint64_t pval, const uint64_t *vals, size_t n,
			     struct scmp_arg_cmp *proto, struct rule_args *ra)
{
	size_t split = 0;
	uint64_t b;

	if (n == 0) {
		ra->alt[ra->n_alt] = *proto;
		ra->alt[ra->n_alt].datum_a = pmask;
		ra->alt[ra->n_alt].datum_b = pval;
		ra->n_alt++;
		return;
	}
	while (bit >= 0 && !(mask & (UINT64_C(1) << bit)))
		bit--;
	if (bit < 0)
		return; /* the prefix is an excluded value */
	b = UINT64_C(1) << bit;
	while (split < n && !(vals[split] & b))
		split++;
	complement_cubes(mask, bit - 1, pmask | b, pval, vals, split, proto, ra);
	complement_cubes(mask, bit - 1, pmask | b, pval | b, vals + split, n - split, proto, ra);
}

static int parse_unless(const json_t *obj, struct rule_args *ra, const char *what, slate_error_t *err)
{
	static const char *const keys[] = { "comment", "arg", "mask", "values", NULL };
	json_t *vals = json_object_get(obj, "values"), *item, *mask = json_object_get(obj, "mask");
	uint64_t v[MAX_LIST];
	size_t i, n = 0;
	struct scmp_arg_cmp proto = { .op = SCMP_CMP_MASKED_EQ };

	if (slate_json_known_keys(obj, keys, what, err) < 0 ||
	    parse_arg_index(obj, &proto.arg, ra->used, what, err) < 0)
		return -1;
	if (mask == NULL)
		return slate_error_refuse(err, "%s: missing `mask`", what);
	if (parse_u64(mask, &proto.datum_a, what, err) < 0)
		return -1;
	if (proto.datum_a == 0)
		return slate_error_refuse(err, "%s: `mask` must not be 0", what);
	if (!json_is_array(vals) || json_array_size(vals) == 0 || json_array_size(vals) > MAX_LIST)
		return slate_error_refuse(err, "%s: `values` must be a list of 1..%d numbers", what, MAX_LIST);
	if (ra->n_alt > 0)
		return slate_error_refuse(err, "%s: only one list of alternatives (a value list or `unless`) per rule",
					  what);
	json_array_foreach (vals, i, item) {
		if (parse_u64(item, &v[n], what, err) < 0)
			return -1;
		if (v[n] & ~proto.datum_a)
			return slate_error_refuse(err, "%s: value 0x%" PRIx64 " has bits outside the mask", what, v[n]);
		n++;
	}
	qsort(v, n, sizeof(v[0]), cmp_u64);
	for (i = 1; i < n; i++)
		if (v[i] == v[i - 1])
			return slate_error_refuse(err, "%s: value 0x%" PRIx64 " is listed twice", what, v[i]);
	complement_cubes(proto.datum_a, 63, 0, 0, v, n, &proto, ra);
	return 0;
}

/* Resolve a syscall name for the rules, refusing a name libseccomp does not
 * know and one the profile promised to refuse. A name that exists only on
 * an ABI the rules do not apply to (chown32 while x86 is refused) is
 * accepted and has no effect. */
static int resolve(struct compiler *c, const char *name, int *nr, const char *what, slate_error_t *err)
{
	*nr = seccomp_syscall_resolve_name(name);
	if (*nr == __NR_SCMP_ERROR)
		return slate_error_refuse(err, "%s: unknown syscall `%s`", what, name);
	if (slate_strv_contains(&c->refuse, name))
		return slate_error_refuse(err, "%s: `%s` is listed in `refuse`", what, name);
	return 0;
}

/* Refuse rule combinations on one syscall that libseccomp would resolve
 * silently (see seccomp.h). */
static int note_syscall(struct compiler *c, int nr, const char *name, uint32_t action, bool unconditional,
			const char *what, slate_error_t *err)
{
	for (size_t i = 0; i < c->n_seen; i++) {
		struct seen *s = &c->seen[i];
		if (s->nr != nr)
			continue;
		if (s->unconditional || unconditional)
			return slate_error_refuse(err,
						  "%s: `%s` already has a rule, and one of them has no conditions "
						  "(libseccomp would let it override the other)",
						  what, name);
		if (s->action != action)
			return slate_error_refuse(err, "%s: `%s` already has a rule with a different action", what,
						  name);
		return 0;
	}
	if (c->n_seen == c->cap_seen) {
		c->cap_seen = c->cap_seen ? 2 * c->cap_seen : 256;
		c->seen = xrealloc(c->seen, c->cap_seen * sizeof(*c->seen));
	}
	c->seen[c->n_seen++] = (struct seen){ .nr = nr, .action = action, .unconditional = unconditional };
	return 0;
}

/* The architectures (indexes into arches[]) of a group. */
static bool in_group(const struct compiler *c, int group, size_t arch)
{
	switch (group) {
	case GROUP_NATIVE: return arch == 0 || (arch == 1 && c->rules_on[1]);
	case GROUP_X86: return arch == 2 && c->rules_on[2];
	default: return !c->rules_on[arch];
	}
}

/* Add one libseccomp rule to each group where the syscall exists. On x86, a
 * conditional rule on a multiplexed call is left out: libseccomp would drop
 * the conditions for the socketcall/ipc form (its arguments are behind a
 * pointer), which would widen the rule; left out, the call gets the
 * default action there. */
static int add_one(struct compiler *c, uint32_t action, int nr, const char *name, struct rule_args *ra,
		   const struct scmp_arg_cmp *alt, const char *what, slate_error_t *err)
{
	struct scmp_arg_cmp cmps[6];
	unsigned n = ra->n_fixed;
	int rc;

	memcpy(cmps, ra->fixed, n * sizeof(cmps[0]));
	if (alt)
		cmps[n++] = *alt;
	if (++c->n_expanded > MAX_EXPANDED)
		return slate_error_refuse(err, "%s: the profile expands to more than %d rules", what, MAX_EXPANDED);
	for (int g = GROUP_NATIVE; g <= GROUP_X86; g++) {
		bool exists = false;
		for (size_t a = 0; a < N_ARCHES; a++)
			exists = exists || (in_group(c, g, a) && on_arch(a, name));
		if (!exists || (g == GROUP_X86 && n > 0 && x86_multiplexed(name)))
			continue;
		rc = seccomp_rule_add_array(c->ctx[g], action, nr, n, cmps);
		if (rc < 0)
			return slate_error_refuse(err, "%s: libseccomp refused the rule for `%s`: %s", what, name,
						  strerror(-rc));
	}
	return 0;
}

static int add_rule(struct compiler *c, const json_t *rule, const char *what, slate_error_t *err)
{
	static const char *const keys[] = { "comment", "action", "errno", "syscalls", "args", "unless", NULL };
	json_t *args = json_object_get(rule, "args"), *unless = json_object_get(rule, "unless"), *item;
	cleanup_free struct rule_args *ra = xcalloc(1, sizeof(*ra));
	cleanup_free char *sub = NULL;
	struct slate_strv names = { 0 };
	uint32_t action = 0;
	size_t i;
	int nr, r = -1;

	if (slate_json_known_keys(rule, keys, what, err) < 0 || parse_action(rule, &action, what, err) < 0)
		return -1;
	if (action == c->def_action)
		return slate_error_refuse(err, "%s: the action is the default action; drop the rule", what);
	if (args && !json_is_array(args))
		return slate_error_refuse(err, "%s: `args` must be a list", what);
	json_array_foreach (args, i, item) {
		free(sub);
		sub = xasprintf("%s.args[%zu]", what, i);
		if (parse_cmp(item, ra, sub, err) < 0)
			return -1;
	}
	if (unless && parse_unless(unless, ra, what, err) < 0)
		return -1;
	if (slate_json_get_strv(rule, "syscalls", false, &names, what, err) < 0)
		goto out;
	if (names.n == 0) {
		slate_error_refuse(err, "%s: `syscalls` is empty", what);
		goto out;
	}
	for (i = 0; i < names.n; i++) {
		bool conditional = ra->n_fixed > 0 || ra->n_alt > 0;
		if (resolve(c, names.v[i], &nr, what, err) < 0 ||
		    note_syscall(c, nr, names.v[i], action, !conditional, what, err) < 0)
			goto out;
		if (ra->n_alt == 0 && add_one(c, action, nr, names.v[i], ra, NULL, what, err) < 0)
			goto out;
		for (size_t k = 0; k < ra->n_alt; k++)
			if (add_one(c, action, nr, names.v[i], ra, &ra->alt[k], what, err) < 0)
				goto out;
	}
	r = 0;
out:
	slate_strv_free(&names);
	return r;
}

static int parse_architectures(struct compiler *c, const json_t *obj, slate_error_t *err)
{
	static const char *const keys[] = { "comment", "x86_64", "x32", "x86", NULL };
	const char *mode;

	if (slate_json_known_keys(obj, keys, "architectures", err) < 0)
		return -1;
	for (size_t i = 0; i < N_ARCHES; i++) {
		if (slate_json_get_string(obj, arches[i].name, false, &mode, "architectures", err) < 0)
			return -1;
		if (strcmp(mode, "rules") != 0 && strcmp(mode, "refuse") != 0)
			return slate_error_refuse(err, "architectures: `%s` must be \"rules\" or \"refuse\"",
						  arches[i].name);
		c->rules_on[i] = strcmp(mode, "rules") == 0;
	}
	if (!c->rules_on[0])
		return slate_error_refuse(err, "architectures: x86_64, the native ABI, must be \"rules\"");
	return 0;
}

/* A filter context with our attributes for the architectures of a group;
 * NULL (without error) if the group is empty. */
static int new_ctx(struct compiler *c, int group, slate_error_t *err)
{
	cleanup_seccomp scmp_filter_ctx ctx = NULL;
	int rc;

	if (!in_group(c, group, 0) && !in_group(c, group, 1) && !in_group(c, group, 2))
		return 0;
	ctx = seccomp_init(c->def_action);
	if (ctx == NULL)
		return slate_error_fail(err, "libseccomp cannot create a filter");
	/* Binary-tree syscall lookup keeps a long allowlist cheap for the
	 * syscalls that the kernel's constant-action cache does not cover.
	 * The bad-arch action stays libseccomp's (kill): every ABI of an
	 * x86_64 kernel is in the filter, so it cannot happen, and leaving it
	 * keeps the program independent of the kernel API level libseccomp
	 * detects. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t a = 1; rc == 0 && a < N_ARCHES; a++)
		if (in_group(c, group, a))
			rc = seccomp_arch_add(ctx, arches[a].token);
	if (rc == 0 && !in_group(c, group, 0))
		rc = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
	if (rc < 0)
		return slate_error_sys(err, -rc, "libseccomp: set up the filter's architectures");
	c->ctx[group] = steal_pointer(&ctx);
	return 0;
}

static int parse_refuse(struct compiler *c, const json_t *root, slate_error_t *err)
{
	if (slate_json_get_strv(root, "refuse", true, &c->refuse, "profile", err) < 0)
		return -1;
	if (c->refuse.n > 0 && c->def_action == SCMP_ACT_ALLOW)
		return slate_error_refuse(err, "profile: `refuse` needs a default action other than \"allow\"");
	for (size_t i = 0; i < c->refuse.n; i++)
		if (seccomp_syscall_resolve_name(c->refuse.v[i]) == __NR_SCMP_ERROR)
			return slate_error_refuse(err, "refuse: unknown syscall `%s`", c->refuse.v[i]);
	return 0;
}

static int compile_rules(struct compiler *c, const json_t *root, slate_error_t *err)
{
	static const char *const keys[] = { "comment", "slate_seccomp", "default", "architectures",
					    "refuse",  "rules",         NULL };
	static const char *const def_keys[] = { "comment", "action", "errno", NULL };
	json_t *def = json_object_get(root, "default"), *rules = json_object_get(root, "rules"), *rule;
	int64_t version = 0;
	size_t i;

	if (slate_json_known_keys(root, keys, "profile", err) < 0 ||
	    slate_json_get_int(root, "slate_seccomp", false, &version, "profile", err) < 0)
		return -1;
	if (version != 1)
		return slate_error_refuse(err, "profile: unsupported `slate_seccomp` version %" PRId64, version);
	if (def == NULL)
		return slate_error_refuse(err, "profile: missing `default`");
	if (slate_json_known_keys(def, def_keys, "default", err) < 0 ||
	    parse_action(def, &c->def_action, "default", err) < 0)
		return -1;
	if (json_object_get(root, "architectures") == NULL)
		return slate_error_refuse(err, "profile: missing `architectures`");
	if (parse_architectures(c, json_object_get(root, "architectures"), err) < 0 || parse_refuse(c, root, err) < 0)
		return -1;
	if (!json_is_array(rules))
		return slate_error_refuse(err, "profile: `rules` must be a list");
	for (int g = 0; g < N_GROUPS; g++)
		if (new_ctx(c, g, err) < 0)
			return -1;
	json_array_foreach (rules, i, rule) {
		char what[32];
		snprintf(what, sizeof(what), "rules[%zu]", i);
		if (add_rule(c, rule, what, err) < 0)
			return -1;
	}
	return 0;
}

/* The compiled program, through a memfd: libseccomp 2.5 exports to an fd
 * only. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *prog, slate_error_t *err)
{
	cleanup_close int fd = memfd_create("slate-seccomp", MFD_CLOEXEC);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	int rc;

	if (fd < 0)
		return slate_error_sys(err, errno, "memfd_create");
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return slate_error_sys(err, -rc, "libseccomp: export the filter");
	if (lseek(fd, 0, SEEK_SET) < 0)
		return slate_error_sys(err, errno, "lseek the exported filter");
	buf = slate_read_fd(fd, "the exported filter", BPF_MAXINSNS * sizeof(struct sock_filter), &len, err);
	if (buf == NULL)
		return slate_error_wrap(err, "the compiled filter is longer than the kernel's %d instructions",
					BPF_MAXINSNS);
	if (len == 0 || len % sizeof(struct sock_filter) != 0)
		return slate_error_fail(err, "libseccomp exported a filter of %zu bytes", len);
	prog->len = (unsigned short)(len / sizeof(struct sock_filter));
	prog->filter = (struct sock_filter *)(void *)steal_pointer(&buf);
	return 0;
}

static int compile_profile(const char *bytes, size_t len, struct sock_fprog *prog, slate_error_t *err)
{
	struct compiler c = { 0 };
	cleanup_json json_t *root = NULL;
	json_error_t jerr;
	int r = -1, rc;

	root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return slate_error_refuse(err, "invalid JSON at line %d: %s", jerr.line, jerr.text);
	if (compile_rules(&c, root, err) < 0)
		goto out;
	/* seccomp_merge keeps each architecture's rules as they are, and
	 * consumes the merged context. */
	for (int g = GROUP_X86; g < N_GROUPS; g++) {
		if (c.ctx[g] == NULL)
			continue;
		rc = seccomp_merge(c.ctx[GROUP_NATIVE], c.ctx[g]);
		if (rc < 0) {
			slate_error_sys(err, -rc, "libseccomp: merge the filters of the architectures");
			goto out;
		}
		c.ctx[g] = NULL;
	}
	r = export_bpf(c.ctx[GROUP_NATIVE], prog, err);
out:
	compiler_free(&c);
	return r;
}

/* ---- the cache ---- */

/* A cache file: this header, the key (everything the program depends on),
 * zero padding to a whole instruction, then the program. The key is
 * compared byte for byte on every load, so the file name (an index, not a
 * digest) never decides which program runs. */
#define CACHE_MAGIC "slate-seccomp\n\0\0"
struct cache_header {
	char magic[16];
	uint64_t key_len;
};

/* The key: the compiler's version, libseccomp's, the ABI list, then the
 * profile's bytes. */
static char *cache_key(const char *bytes, size_t len, size_t *key_len)
{
	const struct scmp_version *v = seccomp_version();
	cleanup_free char *head = xasprintf("%s\nlibseccomp %u.%u.%u\n%s\n", SLATE_SECCOMP_COMPILER, v->major, v->minor,
					    v->micro, ARCH_LIST);
	size_t hlen = strlen(head) + 1;
	char *key = xmalloc(hlen + len);

	memcpy(key, head, hlen);
	memcpy(key + hlen, bytes, len);
	*key_len = hlen + len;
	return key;
}

/* The file's name: FNV-1a (64 bits) of the key. Two keys with one name
 * only take turns in the file; the key inside tells them apart. */
static void cache_index(const char *key, size_t len, char out[SLATE_SECCOMP_INDEX_LEN + 1])
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ULL;
	snprintf(out, SLATE_SECCOMP_INDEX_LEN + 1, "%016" PRIx64, h);
}

static size_t cache_prefix_len(size_t key_len)
{
	size_t n = sizeof(struct cache_header) + key_len;

	return (n + sizeof(struct sock_filter) - 1) / sizeof(struct sock_filter) * sizeof(struct sock_filter);
}

/* The cache holds code that will run in every instance's kernel context
 * for every syscall: only a directory that nobody but us can write may
 * hold it. */
static int cache_dir_check(const char *dir, slate_error_t *err)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return slate_error_sys(err, errno, "create seccomp cache directory `%s`", dir);
	if (lstat(dir, &st) < 0)
		return slate_error_sys(err, errno, "stat `%s`", dir);
	if (!S_ISDIR(st.st_mode))
		return slate_error_refuse(err, "seccomp cache `%s` is not a directory", dir);
	if (st.st_uid != geteuid())
		return slate_error_refuse(err, "seccomp cache `%s` is owned by uid %u, not by uid %u", dir,
					  (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return slate_error_refuse(err, "seccomp cache `%s` is writable by group or others", dir);
	return 0;
}

/* libseccomp's programs start by loading seccomp_data.arch, end in a
 * return, and jump only forward within themselves. */
static bool plausible_program(const struct sock_filter *f, size_t n)
{
	if (f[0].code != (BPF_LD | BPF_W | BPF_ABS) || f[0].k != 4 || BPF_CLASS(f[n - 1].code) != BPF_RET)
		return false;
	for (size_t pc = 0; pc < n; pc++) {
		if (BPF_CLASS(f[pc].code) != BPF_JMP)
			continue;
		if (BPF_OP(f[pc].code) == BPF_JA ? f[pc].k >= n - pc - 1
						 : f[pc].jt >= n - pc - 1 || f[pc].jf >= n - pc - 1)
			return false;
	}
	return true;
}

/* The program of a cache file, if the file is ours, holds this very key
 * and a plausible program; false means recompile. Not a proof of
 * integrity (the directory's ownership is): a check that a truncated,
 * foreign or misplaced file is never handed to the kernel. */
static bool cache_load(const char *path, const char *key, size_t key_len, struct sock_fprog *prog)
{
	cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	size_t prefix = cache_prefix_len(key_len), max = prefix + BPF_MAXINSNS * sizeof(struct sock_filter), len = 0, n;
	cleanup_free char *buf = NULL;
	struct cache_header h;
	struct sock_filter *f;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return false;
	if ((size_t)st.st_size <= prefix || (size_t)st.st_size > max || ((size_t)st.st_size - prefix) % sizeof(*f) != 0)
		return false;
	buf = slate_read_fd(fd, path, max, &len, NULL);
	if (buf == NULL || len != (size_t)st.st_size)
		return false;
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, CACHE_MAGIC, sizeof(h.magic)) != 0 || h.key_len != key_len ||
	    memcmp(buf + sizeof(h), key, key_len) != 0)
		return false;
	n = (len - prefix) / sizeof(*f);
	f = xmalloc(n * sizeof(*f));
	memcpy(f, buf + prefix, n * sizeof(*f));
	if (!plausible_program(f, n)) {
		free(f);
		return false;
	}
	prog->len = (unsigned short)n;
	prog->filter = f;
	return true;
}

static int cache_store(const char *path, const char *key, size_t key_len, const struct sock_fprog *prog,
		       slate_error_t *err)
{
	size_t prefix = cache_prefix_len(key_len), len = prefix + prog->len * sizeof(struct sock_filter);
	cleanup_free char *buf = xcalloc(1, len);
	struct cache_header h = { .key_len = key_len };

	memcpy(h.magic, CACHE_MAGIC, sizeof(h.magic));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), key, key_len);
	memcpy(buf + prefix, prog->filter, prog->len * sizeof(struct sock_filter));
	return slate_write_file_atomic(path, buf, len, 0600, err);
}

int slate_seccomp_prepare(const char *profile_path, const char *cache_dir, struct slate_seccomp *out,
			  slate_error_t *err)
{
	const char *name = profile_path ? profile_path : "(built-in default)";
	cleanup_free char *owned = NULL, *path = NULL, *key = NULL;
	const char *bytes;
	size_t len = 0, key_len = 0;

	memset(out, 0, sizeof(*out));
	if (profile_path) {
		owned = slate_read_file(profile_path, PROFILE_MAX, &len, err);
		if (owned == NULL)
			return slate_error_wrap(err, "seccomp profile");
		bytes = owned;
	} else {
		bytes = slate_seccomp_default_profile(&len);
	}
	key = cache_key(bytes, len, &key_len);
	cache_index(key, key_len, out->index);
	if (cache_dir) {
		if (cache_dir_check(cache_dir, err) < 0)
			return -1;
		path = xasprintf("%s/%s.bpf", cache_dir, out->index);
		if (cache_load(path, key, key_len, &out->prog))
			return out->from_cache = true, 0;
	}
	if (compile_profile(bytes, len, &out->prog, err) < 0)
		return slate_error_wrap(err, "seccomp profile `%s`", name);
	if (path && cache_store(path, key, key_len, &out->prog, err) < 0) {
		slate_seccomp_free(out);
		return slate_error_wrap(err, "seccomp cache");
	}
	return 0;
}

/* Runs in the child right before execve, after capabilities were dropped.
 * no_new_privs is required even though root could load a filter without
 * it: without no_new_privs a set-id binary could run with privileges that
 * the filter's author never saw. TSYNC puts the filter on every thread of
 * the process or fails, so no sibling thread can stay unfiltered until
 * execve ends it. */
int slate_seccomp_install(const struct slate_seccomp *s, slate_error_t *err)
{
	long r = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);

	if (r < 0)
		return slate_error_sys(err, errno, "prctl(PR_GET_NO_NEW_PRIVS)");
	if (r != 1)
		return slate_error_refuse(err, "no_new_privs is not set: refusing to install the seccomp filter");
	if (s->prog.len == 0 || s->prog.filter == NULL)
		return slate_error_fail(err, "no seccomp filter to install");
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &s->prog);
	if (r < 0)
		return slate_error_sys(err, errno, "install the seccomp filter");
	if (r > 0)
		return slate_error_fail(err, "install the seccomp filter: thread %ld could not be synchronised", r);
	return 0;
}

void slate_seccomp_free(struct slate_seccomp *s)
{
	free(s->prog.filter);
	s->prog.filter = NULL;
	s->prog.len = 0;
}
