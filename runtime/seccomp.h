/* slate: the seccomp filter of an instance: compile a JSON profile with
 * libseccomp (never hand-written BPF), cache the compiled program per
 * profile, install it right before execve.
 *
 * Profile format (version 1). JSON; every object may carry a "comment"
 * string, which is ignored; any other unknown key is refused, naming it.
 *
 *   {
 *     "slate_seccomp": 1,
 *     "default": { "action": "errno", "errno": "EPERM" },
 *     "architectures": { "x86_64": "rules", "x32": "refuse", "x86": "refuse" },
 *     "refuse": [ "mount", "unshare", ... ],
 *     "rules": [
 *       { "action": "allow", "syscalls": [ "read", "write", ... ] },
 *       { "action": "allow", "syscalls": [ "clone" ],
 *         "args": [ { "arg": 0, "op": "masked_eq", "mask": "0x7e020000", "value": 0 } ] },
 *       { "action": "allow", "syscalls": [ "ioctl" ],
 *         "unless": { "arg": 1, "mask": "0xffffffff", "values": [ "0x5412", "0x541c" ] } },
 *       { "action": "errno", "errno": "ENOSYS", "syscalls": [ "clone3" ] }
 *     ]
 *   }
 *
 * - "default": what every syscall no rule matches gets. An action is
 *   "allow", "errno" (with "errno": a name such as "EPERM" or a number
 *   1..4095), "kill" (the whole process), "trap" or "log".
 * - "architectures": each of "x86_64", "x32", "x86" must be named, so that
 *   no system call ABI of an x86_64 kernel is left out of the filter.
 *   "rules": the rules apply to it (x86_64 must be "rules"); "refuse": every
 *   syscall made through that ABI gets the default action. On x86, the
 *   socket and SysV IPC calls also exist as subcalls of the socketcall and
 *   ipc multiplexers, whose arguments the filter cannot read: a rule on
 *   such a call allows the direct syscall and the subcall (libseccomp does
 *   this), unless it has conditions, in which case it is left out on x86
 *   and the call gets the default action there (never a widened rule).
 * - "refuse": syscalls that must get the default action: naming one of them
 *   in a rule is refused, and so is a default action of "allow". It states
 *   the profile's intent so that an edit cannot quietly allow them.
 * - A rule: "action" (+ "errno"), "syscalls" (names libseccomp knows; an
 *   unknown name is refused; a name that exists only on an ABI the rules do
 *   not apply to, such as "chown32" while x86 is refused, has no effect),
 *   and optionally:
 *   - "args": comparisons, all of which must hold (AND), at most one per
 *     argument: { "arg": 0..5, "op": "eq" | "ne" | "lt" | "le" | "gt" |
 *     "ge" | "masked_eq", "value": N, "mask": N (masked_eq only) }. For
 *     "eq" and "masked_eq", "value" may be a list: any of them (OR; one
 *     such list per rule). Numbers are non-negative JSON integers or
 *     strings in C syntax ("0x5412", "21522"; a leading 0 is octal),
 *     compared as 64-bit values.
 *   - "unless": { "arg": N, "mask": M, "values": [...] }: the rule applies
 *     only when (arg & mask) is none of the values. libseccomp can only
 *     test for equality under a mask, so slate writes the complement as a
 *     union of masked-equality rules (at most |values| x popcount(mask)).
 *   Several rules for one syscall are allowed only if all of them have
 *   conditions and the same action: libseccomp lets an unconditional rule
 *   silently override conditional ones, and does not define which of two
 *   actions wins when their conditions overlap, so slate refuses both.
 *   A rule whose action equals the default is refused too (libseccomp
 *   cannot express it).
 *
 * The built-in default profile is runtime/seccomp-default.json, embedded in
 * the binary (runtime/seccomp_profile.S); docs/SECCOMP.md explains its
 * choices. */
#ifndef SLATE_SECCOMP_H
#define SLATE_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

#include <linux/filter.h>

#include "slate/error.h"

/* Bump when the way a profile is compiled changes: it is part of the cache key. */
#define SLATE_SECCOMP_COMPILER "slate-seccomp-1"
#define SLATE_SECCOMP_INDEX_LEN 16

struct slate_seccomp {
	struct sock_fprog prog; /* filter owned by this struct */
	char index[SLATE_SECCOMP_INDEX_LEN + 1]; /* the cache file's name, hex */
	bool from_cache;
};

/* Compile (or load from the cache) the filter for a profile: profile_path
 * NULL = the built-in default. cache_dir NULL = no cache; else the compiled
 * program is kept in cache_dir/<index>.bpf with its key (the compiler's
 * version SLATE_SECCOMP_COMPILER, libseccomp's version, the architecture
 * list, the profile bytes); index is a 64-bit FNV-1a of the key, a name
 * and nothing more; written atomically, 0600, owned by the caller's euid.
 * cache_dir is created 0700 if missing and must be a directory owned by
 * the caller and writable by nobody else. A cache file is used only if it
 * is a regular file owned by the caller, not accessible to group or others,
 * holds exactly this key (compared byte for byte) and a plausible program
 * (whole instructions, 1..BPF_MAXINSNS of them, ending in a return);
 * anything else is recompiled and replaced.
 * A bad profile is a refusal naming the problem. */
int slate_seccomp_prepare(const char *profile_path, const char *cache_dir, struct slate_seccomp *out,
			  slate_error_t *err);

/* Install the filter on the calling thread, and on every other thread of
 * the process (TSYNC). Refuses unless no_new_privs is already set. Meant
 * to be called last, right before execve. */
int slate_seccomp_install(const struct slate_seccomp *s, slate_error_t *err);

void slate_seccomp_free(struct slate_seccomp *s);

/* The embedded default profile (not NUL-terminated). */
const char *slate_seccomp_default_profile(size_t *len);

#endif
