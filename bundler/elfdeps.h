/* slate-bundle: read the dynamic-linking facts of ELF files (interpreter,
 * DT_NEEDED, DT_RUNPATH, DT_RPATH, DT_SONAME) and compute the
 * shared-library closure of a set of programs the way glibc's ld.so
 * would search for it, without running anything.
 *
 * Every path is interpreted inside `sysroot` ("/" for the host), resolved
 * with openat2(RESOLVE_IN_ROOT), so that symlinks in a fake tree cannot
 * point outside it. The files are untrusted input: every offset and size
 * is checked against the file size, a malformed ELF file is an error. */
#ifndef SLATE_BUNDLER_ELF_H
#define SLATE_BUNDLER_ELF_H

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>

#include "slate/error.h"
#include "slate/util.h"

struct slate_elf_info {
	bool is_elf;
	int elf_class; /* ELFCLASS32 / ELFCLASS64 */
	int machine; /* e_machine */
	char *interp; /* PT_INTERP or NULL */
	struct slate_strv needed; /* DT_NEEDED, in order */
	struct slate_strv runpath; /* DT_RUNPATH entries (split on ':'), unexpanded */
	struct slate_strv rpath; /* DT_RPATH entries, unexpanded */
	char *soname; /* DT_SONAME or NULL */
};

/* Read the ELF headers of `path` under `sysroot` ("/" for the host; the path
 * is interpreted inside sysroot, so that tests can use a fake tree). A file
 * that is not ELF gives 0 with info->is_elf false; a malformed or
 * big-endian ELF file is an error. On failure info is left empty. */
int slate_elf_read(const char *sysroot, const char *path, struct slate_elf_info *info, slate_error_t *err);
void slate_elf_info_free(struct slate_elf_info *info);

/* Loader search dirs from sysroot's /etc/ld.so.conf (includes, globs,
 * comments, blank lines, `hwcap` lines ignored) followed by the trusted
 * default dirs; each absolute, as written (not canonicalised), no
 * duplicates. Appends to *dirs. A missing /etc/ld.so.conf is not an error. */
int slate_elf_ldconf_dirs(const char *sysroot, struct slate_strv *dirs, slate_error_t *err);

/* The closure: for every path in roots (absolute paths inside sysroot;
 * non-ELF files are ignored), append to `out` every library (transitively)
 * and the interpreter, as the absolute path where the loader would find it
 * (dir + "/" + soname, not resolved through symlinks). Each path once;
 * roots themselves are not added. A DT_NEEDED that cannot be found is an
 * error naming the library and the object that needs it. */
int slate_elf_closure(const char *sysroot, const char *const *roots, size_t nroots, struct slate_strv *out,
		      slate_error_t *err);

#endif
