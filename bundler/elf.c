/* slate-bundle: ELF dynamic-linking facts and the shared-library closure
 * (see elfdeps.h). Nothing here runs the files it reads: ldd would execute the
 * program's interpreter, and a bundle build must not run what it packs. */

#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "elfdeps.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "elf.c decodes little-endian ELF files by copying them into host-order structs"
#endif

#define NO_OBJ SIZE_MAX
#define LDCONF_MAX_DEPTH 16
#define LDCONF_MAX_SIZE (1024 * 1024)

/* ---- files inside the sysroot ---- */

#define MAX_SYMLINKS 40

/* Replace the walk's remaining path with a symlink's target followed by
 * what was left after the link. */
static int splice_link(char *rest, size_t size, const char *target, const char *left)
{
	char tmp[PATH_MAX * 2];
	int n = snprintf(tmp, sizeof(tmp), "%s/%s", target, left);

	if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(rest, tmp, (size_t)n + 1);
	return 0;
}

/* A path walk inside the tree at rootfd. depth counts the real
 * directories between the root and dfd, so that ".." never leaves the root. */
struct walk {
	int rootfd, dfd;
	size_t depth;
	int links;
	char rest[PATH_MAX * 2]; /* what is left to resolve */
};

static void walk_to_root(struct walk *w)
{
	if (w->dfd != w->rootfd)
		close(w->dfd);
	w->dfd = w->rootfd;
	w->depth = 0;
}

/* Step into directory `comp`, or out of the current one for "..". */
static int walk_step(struct walk *w, const char *comp)
{
	bool up = strcmp(comp, "..") == 0;
	int nfd;

	if (up && w->depth == 0)
		return 0;
	nfd = openat(w->dfd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (nfd < 0)
		return -1;
	if (w->dfd != w->rootfd)
		close(w->dfd);
	w->dfd = nfd;
	w->depth = up ? w->depth - 1 : w->depth + 1;
	return 0;
}

/* Splice the target of symlink `comp` in front of `left`; an absolute
 * target restarts at the root. */
static int walk_link(struct walk *w, const char *comp, const char *left)
{
	char target[PATH_MAX];
	ssize_t n;

	if (++w->links > MAX_SYMLINKS) {
		errno = ELOOP;
		return -1;
	}
	if ((n = readlinkat(w->dfd, comp, target, sizeof(target) - 1)) < 0)
		return -1;
	target[n] = '\0';
	if (splice_link(w->rest, sizeof(w->rest), target, left) < 0)
		return -1;
	if (target[0] == '/')
		walk_to_root(w);
	return 0;
}

/* What RESOLVE_IN_ROOT does, for kernels (and valgrind) without openat2:
 * walk one component at a time with O_NOFOLLOW, splicing symlink targets
 * in by hand. Only the last component is opened with `flags`. */
static int walk_open(int rootfd, const char *path, int flags)
{
	struct walk w = { .rootfd = rootfd, .dfd = rootfd };
	char comp[NAME_MAX + 1];
	const char *p = w.rest;
	int fd = -1, saved;

	if (splice_link(w.rest, sizeof(w.rest), "", path) < 0)
		return -1;
	for (;;) {
		size_t len;
		struct stat st;

		p += strspn(p, "/");
		len = strcspn(p, "/");
		if (len == 0) {
			fd = openat(w.dfd, ".", flags);
			break;
		}
		if (len > NAME_MAX) {
			errno = ENAMETOOLONG;
			break;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		p += len;
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			if (walk_step(&w, comp) < 0)
				break;
			continue;
		}
		if (fstatat(w.dfd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
			break;
		if (S_ISLNK(st.st_mode)) {
			if (walk_link(&w, comp, p) < 0)
				break;
			p = w.rest;
		} else if (p[strspn(p, "/")] == '\0') {
			fd = openat(w.dfd, comp, flags | O_NOFOLLOW);
			break;
		} else if (walk_step(&w, comp) < 0) {
			break;
		}
	}
	saved = errno;
	walk_to_root(&w);
	errno = saved;
	return fd;
}

/* Open `path` (absolute, inside the tree at rootfd) for reading.
 * RESOLVE_IN_ROOT keeps symlinks such as /lib -> /usr/lib inside a fake
 * tree instead of letting them reach the host's files. O_NONBLOCK so that a
 * FIFO in an untrusted tree cannot hang us (callers reject non-regular
 * files). Returns the fd, or -1 with errno set. */
static int root_open(int rootfd, const char *path)
{
	static atomic_bool no_openat2;
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	struct open_how how = { .flags = flags, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	long fd;

	if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
		fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		/* EPERM: container seccomp profiles that predate openat2. */
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
			return (int)fd;
		atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
	}
	return walk_open(rootfd, path, flags);
}

static int open_sysroot(const char *sysroot, slate_error_t *err)
{
	int fd = open(sysroot, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return slate_error_sys(err, errno, "open sysroot `%s`", sysroot);
	return fd;
}

/* A missing file or one we may not read is "not here" while searching. */
static bool is_absent_errno(int e)
{
	return e == ENOENT || e == ENOTDIR || e == EACCES || e == ELOOP || e == ENAMETOOLONG || e == EXDEV;
}

/* "/a/b/c" -> "/a/b", "/c" -> "/". */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static void collapse_slashes(char *p)
{
	char *w = p;

	for (const char *r = p; *r; r++)
		if (!(r[0] == '/' && r[1] == '/'))
			*w++ = *r;
	*w = '\0';
}

/* ---- ELF parsing: every offset and size is checked against the file ---- */

struct elf_file {
	int fd;
	uint64_t size;
	const char *name; /* for messages */
	int cls;
};

/* A program header, widened from either class. */
struct elf_seg {
	uint32_t type;
	uint64_t offset, vaddr, filesz;
};

struct elf_dyn {
	int64_t tag;
	uint64_t val;
};

SLATE_PRINTF(3, 4)
static int malformed(const struct elf_file *f, slate_error_t *err, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return slate_error_set(err, SLATE_EXIT_REFUSED, ENOEXEC, "malformed ELF file `%s`: %s", f->name, why);
}

/* Read len bytes at off, refusing anything that is not inside the file. */
static int file_read(const struct elf_file *f, void *buf, uint64_t off, uint64_t len, const char *what,
		     slate_error_t *err)
{
	uint64_t done = 0;

	if (off > f->size || len > f->size - off)
		return malformed(f, err, "%s (offset %llu, %llu bytes) lies beyond the end of the file", what,
				 (unsigned long long)off, (unsigned long long)len);
	while (done < len) {
		ssize_t r = pread(f->fd, (char *)buf + done, (size_t)(len - done), (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return slate_error_sys(err, errno, "read `%s`", f->name);
		if (r == 0)
			return slate_error_fail(err, "`%s` shrank while being read", f->name);
		done += (uint64_t)r;
	}
	return 0;
}

/* Sets *is_elf; a file without the magic is not ELF, which is no error. */
static int read_ident(struct elf_file *f, bool *is_elf, slate_error_t *err)
{
	unsigned char id[EI_NIDENT] = { 0 };
	uint64_t n = f->size < EI_NIDENT ? f->size : EI_NIDENT;

	*is_elf = false;
	if (file_read(f, id, 0, n, "the identification", err) < 0)
		return -1;
	if (n < SELFMAG || memcmp(id, ELFMAG, SELFMAG) != 0)
		return 0;
	*is_elf = true;
	if (n < EI_NIDENT)
		return malformed(f, err, "truncated identification");
	if (id[EI_CLASS] != ELFCLASS32 && id[EI_CLASS] != ELFCLASS64)
		return malformed(f, err, "unknown class %u", id[EI_CLASS]);
	if (id[EI_DATA] == ELFDATA2MSB)
		return slate_error_refuse(err, "`%s` is a big-endian ELF file, which is not supported", f->name);
	if (id[EI_DATA] != ELFDATA2LSB)
		return malformed(f, err, "unknown data encoding %u", id[EI_DATA]);
	if (id[EI_VERSION] != EV_CURRENT)
		return malformed(f, err, "unknown version %u", id[EI_VERSION]);
	f->cls = id[EI_CLASS];
	return 0;
}

struct elf_hdr {
	unsigned machine, phnum, phentsize;
	uint64_t phoff;
};

static int read_ehdr(struct elf_file *f, struct elf_hdr *h, slate_error_t *err)
{
	size_t want;

	if (f->cls == ELFCLASS64) {
		Elf64_Ehdr e;
		if (file_read(f, &e, 0, sizeof(e), "the ELF header", err) < 0)
			return -1;
		*h = (struct elf_hdr){ e.e_machine, e.e_phnum, e.e_phentsize, e.e_phoff };
		want = sizeof(Elf64_Phdr);
	} else {
		Elf32_Ehdr e;
		if (file_read(f, &e, 0, sizeof(e), "the ELF header", err) < 0)
			return -1;
		*h = (struct elf_hdr){ e.e_machine, e.e_phnum, e.e_phentsize, e.e_phoff };
		want = sizeof(Elf32_Phdr);
	}
	/* PN_XNUM moves the count into section 0; no loadable object uses it. */
	if (h->phnum == PN_XNUM)
		return malformed(f, err, "extended program header numbering is not supported");
	if (h->phnum > 0 && h->phentsize != want)
		return malformed(f, err, "e_phentsize is %u, expected %zu", h->phentsize, want);
	return 0;
}

/* The program headers, widened; NULL on error. Never NULL for phnum 0. */
static struct elf_seg *read_phdrs(struct elf_file *f, const struct elf_hdr *h, slate_error_t *err)
{
	size_t ent = h->phentsize, n = h->phnum;
	cleanup_free unsigned char *raw = NULL;
	struct elf_seg *segs = xcalloc(n ? n : 1, sizeof(*segs));

	if (n == 0)
		return segs;
	raw = xmalloc(n * ent);
	if (file_read(f, raw, h->phoff, n * ent, "the program headers", err) < 0) {
		free(segs);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (f->cls == ELFCLASS64) {
			Elf64_Phdr p;
			memcpy(&p, raw + i * ent, sizeof(p));
			segs[i] = (struct elf_seg){ p.p_type, p.p_offset, p.p_vaddr, p.p_filesz };
		} else {
			Elf32_Phdr p;
			memcpy(&p, raw + i * ent, sizeof(p));
			segs[i] = (struct elf_seg){ p.p_type, p.p_offset, p.p_vaddr, p.p_filesz };
		}
	}
	return segs;
}

static int read_interp(struct elf_file *f, const struct elf_seg *s, char **interp, slate_error_t *err)
{
	cleanup_free char *buf = NULL;

	if (*interp != NULL)
		return malformed(f, err, "more than one PT_INTERP");
	if (s->filesz < 2 || s->filesz > PATH_MAX)
		return malformed(f, err, "PT_INTERP is %llu bytes long", (unsigned long long)s->filesz);
	buf = xmalloc((size_t)s->filesz);
	if (file_read(f, buf, s->offset, s->filesz, "PT_INTERP", err) < 0)
		return -1;
	if (memchr(buf, '\0', (size_t)s->filesz) == NULL || buf[0] == '\0')
		return malformed(f, err, "PT_INTERP is not a NUL-terminated path");
	*interp = steal_pointer(&buf);
	return 0;
}

/* The dynamic section up to DT_NULL; NULL on error. */
static struct elf_dyn *read_dynamic(struct elf_file *f, const struct elf_seg *s, size_t *count, slate_error_t *err)
{
	size_t ent = f->cls == ELFCLASS64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
	cleanup_free unsigned char *raw = NULL;
	cleanup_free struct elf_dyn *dyn = NULL;
	size_t n;

	/* Check before allocating: filesz is untrusted. */
	if (s->offset > f->size || s->filesz > f->size - s->offset) {
		malformed(f, err, "PT_DYNAMIC lies beyond the end of the file");
		return NULL;
	}
	n = (size_t)(s->filesz / ent);
	raw = xmalloc(n * ent);
	if (file_read(f, raw, s->offset, n * ent, "PT_DYNAMIC", err) < 0)
		return NULL;
	dyn = xcalloc(n, sizeof(*dyn));
	for (size_t i = 0; i < n; i++) {
		if (f->cls == ELFCLASS64) {
			Elf64_Dyn d;
			memcpy(&d, raw + i * ent, sizeof(d));
			dyn[i] = (struct elf_dyn){ d.d_tag, d.d_un.d_val };
		} else {
			Elf32_Dyn d;
			memcpy(&d, raw + i * ent, sizeof(d));
			dyn[i] = (struct elf_dyn){ d.d_tag, d.d_un.d_val };
		}
		if (dyn[i].tag == DT_NULL) {
			*count = i;
			return steal_pointer(&dyn);
		}
	}
	malformed(f, err, "PT_DYNAMIC has no DT_NULL terminator");
	return NULL;
}

/* DT_STRTAB holds a virtual address, not a file offset: find the PT_LOAD
 * segment whose file-backed part holds [addr, addr + len). */
static bool vaddr_to_offset(const struct elf_seg *segs, size_t nsegs, uint64_t addr, uint64_t len, uint64_t *off)
{
	for (size_t i = 0; i < nsegs; i++) {
		const struct elf_seg *s = &segs[i];
		uint64_t delta = addr - s->vaddr;

		if (s->type != PT_LOAD || addr < s->vaddr || delta > s->filesz || len > s->filesz - delta)
			continue;
		if (s->offset > UINT64_MAX - delta)
			continue;
		*off = s->offset + delta;
		return true;
	}
	return false;
}

static char *read_strtab(struct elf_file *f, const struct elf_seg *segs, size_t nsegs, uint64_t addr, uint64_t size,
			 slate_error_t *err)
{
	cleanup_free char *tab = NULL;
	uint64_t off = 0;

	if (size == 0 || size > f->size) {
		malformed(f, err, "DT_STRSZ %llu does not fit the file", (unsigned long long)size);
		return NULL;
	}
	if (!vaddr_to_offset(segs, nsegs, addr, size, &off)) {
		malformed(f, err, "DT_STRTAB 0x%llx is not inside a loaded segment", (unsigned long long)addr);
		return NULL;
	}
	tab = xmalloc((size_t)size);
	if (file_read(f, tab, off, size, "the dynamic string table", err) < 0)
		return NULL;
	return steal_pointer(&tab);
}

static const char *dyn_string(const struct elf_file *f, const char *tab, uint64_t size, uint64_t off, const char *tag,
			      slate_error_t *err)
{
	if (off >= size) {
		malformed(f, err, "%s string offset %llu is outside the string table", tag, (unsigned long long)off);
		return NULL;
	}
	if (memchr(tab + off, '\0', (size_t)(size - off)) == NULL) {
		malformed(f, err, "%s string at offset %llu is not NUL-terminated", tag, (unsigned long long)off);
		return NULL;
	}
	return tab + off;
}

/* Empty entries are kept: ld.so reads them as the working directory. */
static void split_path_list(struct slate_strv *sv, const char *s)
{
	for (;;) {
		size_t len = strcspn(s, ":");
		slate_strv_push_owned(sv, xstrndup(s, len));
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
}

static int collect_strings(const struct elf_file *f, const struct elf_dyn *dyn, size_t n, const char *tab,
			   uint64_t size, struct slate_elf_info *info, slate_error_t *err)
{
	for (size_t i = 0; i < n; i++) {
		const char *s;

		switch (dyn[i].tag) {
		case DT_NEEDED:
			if (!(s = dyn_string(f, tab, size, dyn[i].val, "DT_NEEDED", err)))
				return -1;
			if (*s == '\0')
				return malformed(f, err, "empty DT_NEEDED");
			slate_strv_push(&info->needed, s);
			break;
		case DT_RUNPATH:
		case DT_RPATH:
			if (!(s = dyn_string(f, tab, size, dyn[i].val, "DT_RUNPATH", err)))
				return -1;
			split_path_list(dyn[i].tag == DT_RUNPATH ? &info->runpath : &info->rpath, s);
			break;
		case DT_SONAME:
			if (!(s = dyn_string(f, tab, size, dyn[i].val, "DT_SONAME", err)))
				return -1;
			free(info->soname);
			info->soname = xstrdup(s);
			break;
		}
	}
	return 0;
}

static int read_dyn_info(struct elf_file *f, const struct elf_seg *segs, size_t nsegs, const struct elf_seg *dynseg,
			 struct slate_elf_info *info, slate_error_t *err)
{
	size_t n = 0;
	cleanup_free struct elf_dyn *dyn = read_dynamic(f, dynseg, &n, err);
	cleanup_free char *tab = NULL;
	uint64_t strtab = 0, strsz = 0;
	bool has_tab = false, has_sz = false, has_strings = false;

	if (dyn == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		switch (dyn[i].tag) {
		case DT_STRTAB:
			strtab = dyn[i].val;
			has_tab = true;
			break;
		case DT_STRSZ:
			strsz = dyn[i].val;
			has_sz = true;
			break;
		case DT_NEEDED:
		case DT_RUNPATH:
		case DT_RPATH:
		case DT_SONAME: has_strings = true; break;
		}
	}
	if (!has_strings)
		return 0;
	if (!has_tab || !has_sz)
		return malformed(f, err, "dynamic strings without DT_STRTAB and DT_STRSZ");
	if (!(tab = read_strtab(f, segs, nsegs, strtab, strsz, err)))
		return -1;
	return collect_strings(f, dyn, n, tab, strsz, info, err);
}

static int read_elf_file(struct elf_file *f, struct slate_elf_info *info, slate_error_t *err)
{
	struct elf_hdr h;
	cleanup_free struct elf_seg *segs = NULL;
	const struct elf_seg *dyn = NULL;

	if (read_ident(f, &info->is_elf, err) < 0 || !info->is_elf)
		return info->is_elf ? -1 : 0;
	if (read_ehdr(f, &h, err) < 0 || !(segs = read_phdrs(f, &h, err)))
		return -1;
	info->elf_class = f->cls;
	info->machine = (int)h.machine;
	for (size_t i = 0; i < h.phnum; i++) {
		if (segs[i].type == PT_INTERP && read_interp(f, &segs[i], &info->interp, err) < 0)
			return -1;
		if (segs[i].type == PT_DYNAMIC) {
			if (dyn != NULL)
				return malformed(f, err, "more than one PT_DYNAMIC");
			dyn = &segs[i];
		}
	}
	/* A static executable has no PT_DYNAMIC and so no dependencies. */
	if (dyn == NULL)
		return 0;
	return read_dyn_info(f, segs, h.phnum, dyn, info, err);
}

/* Reads from an open fd; a non-regular file is "not ELF". */
static int read_elf_fd(int fd, const char *name, struct slate_elf_info *info, struct stat *st, slate_error_t *err)
{
	struct elf_file f = { .fd = fd, .name = name };

	memset(info, 0, sizeof(*info));
	if (fstat(fd, st) < 0)
		return slate_error_sys(err, errno, "stat `%s`", name);
	if (!S_ISREG(st->st_mode))
		return 0;
	f.size = (uint64_t)st->st_size;
	if (read_elf_file(&f, info, err) < 0) {
		slate_elf_info_free(info);
		return -1;
	}
	return 0;
}

int slate_elf_read(const char *sysroot, const char *path, struct slate_elf_info *info, slate_error_t *err)
{
	cleanup_close int rootfd = -1;
	cleanup_close int fd = -1;
	struct stat st;

	memset(info, 0, sizeof(*info));
	if ((rootfd = open_sysroot(sysroot, err)) < 0)
		return -1;
	if ((fd = root_open(rootfd, path)) < 0)
		return slate_error_sys(err, errno, "open `%s`", path);
	return read_elf_fd(fd, path, info, &st, err);
}

void slate_elf_info_free(struct slate_elf_info *info)
{
	free(info->interp);
	free(info->soname);
	slate_strv_free(&info->needed);
	slate_strv_free(&info->runpath);
	slate_strv_free(&info->rpath);
	memset(info, 0, sizeof(*info));
}

/* ---- architectures: multiarch dirs and the values of $LIB, $PLATFORM ---- */

struct elf_arch {
	int cls;
	int machine;
	const char *triplet;
	const char *lib; /* Debian's ld.so expands $LIB to lib/<triplet> (seen with LD_DEBUG=libs) */
	const char *platform; /* AT_PLATFORM the kernel gives such a process */
};

static const struct elf_arch arches[] = {
	{ ELFCLASS64, EM_X86_64, "x86_64-linux-gnu", "lib/x86_64-linux-gnu", "x86_64" },
	{ ELFCLASS32, EM_386, "i386-linux-gnu", "lib/i386-linux-gnu", "i686" },
	{ ELFCLASS64, EM_AARCH64, "aarch64-linux-gnu", "lib/aarch64-linux-gnu", "aarch64" },
};

static const struct elf_arch *arch_for(int cls, int machine)
{
	for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++)
		if (arches[i].cls == cls && arches[i].machine == machine)
			return &arches[i];
	return NULL;
}

static const struct elf_arch *host_arch(void)
{
#if defined(__x86_64__) && !defined(__ILP32__)
	return arch_for(ELFCLASS64, EM_X86_64);
#elif defined(__i386__)
	return arch_for(ELFCLASS32, EM_386);
#elif defined(__aarch64__)
	return arch_for(ELFCLASS64, EM_AARCH64);
#else
	return NULL;
#endif
}

/* ---- ld.so.conf ---- */

struct ldconf {
	int rootfd;
	const char *prefix; /* sysroot without trailing '/', "" for the host */
	struct slate_strv *dirs;
};

static void add_dir(struct slate_strv *dirs, const char *dir, size_t len)
{
	cleanup_free char *d = NULL;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	d = xstrndup(dir, len);
	/* ldconfig only warns about a relative dir; it means nothing to ld.so. */
	if (d[0] != '/' || slate_strv_contains(dirs, d))
		return;
	slate_strv_push_owned(dirs, steal_pointer(&d));
}

static bool is_keyword(const char *line, const char *word)
{
	size_t n = strlen(word);

	return strncmp(line, word, n) == 0 && (line[n] == ' ' || line[n] == '\t');
}

/* The sysroot is part of the glob pattern: escape its metacharacters. */
static char *glob_escape(const char *s)
{
	char *out = xmalloc(2 * strlen(s) + 1), *w = out;

	for (; *s; s++) {
		if (strchr("*?[]\\", *s))
			*w++ = '\\';
		*w++ = *s;
	}
	*w = '\0';
	return out;
}

static int parse_conf_file(struct ldconf *lc, const char *path, int depth, slate_error_t *err);

/* `include` takes blank-separated globs, relative ones to the including
 * file's directory; glob() sorts, which gives conf.d its order. */
static int conf_include(struct ldconf *lc, const char *file, char *patterns, int depth, slate_error_t *err)
{
	char *save = NULL;

	for (char *pat = strtok_r(patterns, " \t", &save); pat; pat = strtok_r(NULL, " \t", &save)) {
		cleanup_free char *dir = dir_of(file);
		cleanup_free char *abs = pat[0] == '/' ? xstrdup(pat) : xasprintf("%s/%s", dir, pat);
		cleanup_free char *esc = glob_escape(lc->prefix);
		cleanup_free char *full = xasprintf("%s%s", esc, abs);
		glob_t g = { 0 };
		int r = glob(full, 0, NULL, &g);

		if (r == GLOB_NOSPACE) {
			globfree(&g);
			return slate_error_sys(err, ENOMEM, "glob `%s`", abs);
		}
		for (size_t i = 0; r == 0 && i < g.gl_pathc; i++) {
			const char *inside = g.gl_pathv[i] + strlen(lc->prefix);
			if (parse_conf_file(lc, inside, depth + 1, err) < 0) {
				globfree(&g);
				return -1;
			}
		}
		globfree(&g);
	}
	return 0;
}

static int parse_conf_line(struct ldconf *lc, const char *file, char *line, int depth, slate_error_t *err)
{
	char *hash = strchr(line, '#');
	size_t len;

	if (hash)
		*hash = '\0';
	line += strspn(line, " \t\r\f\v");
	len = strlen(line);
	while (len > 0 && isspace((unsigned char)line[len - 1]))
		line[--len] = '\0';
	if (len == 0 || is_keyword(line, "hwcap"))
		return 0;
	if (is_keyword(line, "include"))
		return conf_include(lc, file, line + strlen("include"), depth, err);
	/* The legacy "dir=libtype" form: the type means nothing to ld.so. */
	add_dir(lc->dirs, line, strcspn(line, "="));
	return 0;
}

static int parse_conf_file(struct ldconf *lc, const char *path, int depth, slate_error_t *err)
{
	cleanup_close int fd = -1;
	cleanup_free char *text = NULL;
	struct stat st;
	char *save = NULL;

	if (depth > LDCONF_MAX_DEPTH)
		return slate_error_refuse(err, "`%s`: ld.so.conf includes nest too deeply (a cycle?)", path);
	if ((fd = root_open(lc->rootfd, path)) < 0)
		return is_absent_errno(errno) ? 0 : slate_error_sys(err, errno, "open `%s`", path);
	if (fstat(fd, &st) < 0)
		return slate_error_sys(err, errno, "stat `%s`", path);
	/* ldconfig reads nothing from a directory a glob happened to match. */
	if (!S_ISREG(st.st_mode))
		return 0;
	if (!(text = slate_read_fd(fd, path, LDCONF_MAX_SIZE, NULL, err)))
		return -1;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (parse_conf_line(lc, path, line, depth, err) < 0)
			return -1;
	return 0;
}

/* ld.so's trusted directories, searched after ld.so.cache. */
static void add_default_dirs(struct slate_strv *dirs)
{
	const struct elf_arch *a = host_arch();
	char buf[64];

	if (a != NULL) {
		snprintf(buf, sizeof(buf), "/lib/%s", a->triplet);
		add_dir(dirs, buf, strlen(buf));
		snprintf(buf, sizeof(buf), "/usr/lib/%s", a->triplet);
		add_dir(dirs, buf, strlen(buf));
		if (a->cls == ELFCLASS64) {
			add_dir(dirs, "/lib64", 6);
			add_dir(dirs, "/usr/lib64", 10);
		}
	}
	add_dir(dirs, "/lib", 4);
	add_dir(dirs, "/usr/lib", 8);
}

static char *sysroot_prefix(const char *sysroot)
{
	size_t len = strlen(sysroot);

	while (len > 0 && sysroot[len - 1] == '/')
		len--;
	return xstrndup(sysroot, len);
}

int slate_elf_ldconf_dirs(const char *sysroot, struct slate_strv *dirs, slate_error_t *err)
{
	cleanup_close int rootfd = -1;
	cleanup_free char *prefix = sysroot_prefix(sysroot);
	struct ldconf lc = { .prefix = prefix, .dirs = dirs };

	if ((rootfd = open_sysroot(sysroot, err)) < 0)
		return -1;
	lc.rootfd = rootfd;
	if (parse_conf_file(&lc, "/etc/ld.so.conf", 0, err) < 0)
		return -1;
	add_default_dirs(dirs);
	return 0;
}

/* ---- dynamic string tokens ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Length of the token `ref` at s (just after a '$'), braces included, or 0.
 * Unbraced, the name must not run on into more identifier characters. */
static size_t dst_len(const char *s, const char *ref)
{
	size_t n = strlen(ref);
	bool curly = s[0] == '{';
	const char *p = s + curly;

	if (strncmp(p, ref, n) != 0)
		return 0;
	if (curly)
		return p[n] == '}' ? n + 2 : 0;
	return isalnum((unsigned char)p[n]) || p[n] == '_' ? 0 : n;
}

/* Expand $ORIGIN, $LIB and $PLATFORM (also braced) like ld.so. NULL when s
 * uses a token we cannot value: ld.so drops such an entry too. A '$' that
 * starts no known token stays as it is. */
static char *expand_dst(const char *s, const char *origin, int cls, int machine)
{
	const struct elf_arch *a = arch_for(cls, machine);
	const struct {
		const char *name, *value;
	} dst[] = {
		{ "ORIGIN", origin },
		{ "LIB", a ? a->lib : NULL },
		{ "PLATFORM", a ? a->platform : NULL },
	};
	const size_t ndst = sizeof(dst) / sizeof(dst[0]);
	struct sbuf b = { 0 };

	sbuf_add(&b, "", 0);
	while (*s) {
		size_t k = 0, len = 0;

		if (*s == '$')
			while (k < ndst && (len = dst_len(s + 1, dst[k].name)) == 0)
				k++;
		if (len == 0) {
			sbuf_add(&b, s++, 1);
			continue;
		}
		if (dst[k].value == NULL) {
			free(b.p);
			return NULL;
		}
		sbuf_add(&b, dst[k].value, strlen(dst[k].value));
		s += 1 + len;
	}
	collapse_slashes(b.p);
	return b.p;
}

/* ---- the closure ---- */

/* State shared by the closures of all roots. */
struct closure_ctx {
	int rootfd;
	char *real_prefix; /* realpath of the sysroot, "" for the host */
	struct slate_strv sysdirs;
	const char *const *roots;
	size_t nroots;
	struct slate_strv *out;
};

/* One loaded object in the namespace of one root. */
struct elf_obj {
	char *path; /* where the loader finds it (as given for a root) */
	char *origin; /* what $ORIGIN expands to in its strings */
	struct slate_elf_info info;
	struct slate_strv names; /* what a later DT_NEEDED matches: path, needed string, soname */
	dev_t dev;
	ino_t ino;
	size_t loader; /* the object whose DT_NEEDED loaded it, NO_OBJ for a root or interpreter */
};

/* The namespace of one root, as ld.so would build it in that process. */
struct closure {
	struct closure_ctx *cx;
	struct elf_obj *objs;
	size_t n, cap;
};

struct candidate {
	char *path;
	struct slate_elf_info info;
	bool regular; /* a directory or device is never ELF */
	dev_t dev;
	ino_t ino;
};

static void candidate_free(struct candidate *c)
{
	free(c->path);
	slate_elf_info_free(&c->info);
	c->path = NULL;
}

static void closure_free(struct closure *cl)
{
	for (size_t i = 0; i < cl->n; i++) {
		free(cl->objs[i].path);
		free(cl->objs[i].origin);
		slate_elf_info_free(&cl->objs[i].info);
		slate_strv_free(&cl->objs[i].names);
	}
	free(cl->objs);
	cl->objs = NULL;
	cl->n = cl->cap = 0;
}

/* Takes over the candidate's path and info. */
static size_t obj_add(struct closure *cl, struct candidate *c, const char *origin_of, size_t loader)
{
	struct elf_obj *o;

	if (cl->n == cl->cap) {
		cl->cap = cl->cap ? cl->cap * 2 : 16;
		cl->objs = xrealloc(cl->objs, cl->cap * sizeof(*cl->objs));
	}
	o = &cl->objs[cl->n];
	*o = (struct elf_obj){ .dev = c->dev, .ino = c->ino, .loader = loader, .info = c->info };
	o->path = steal_pointer(&c->path);
	o->origin = dir_of(origin_of ? origin_of : o->path);
	memset(&c->info, 0, sizeof(c->info));
	slate_strv_push(&o->names, o->path);
	if (o->info.soname)
		slate_strv_push(&o->names, o->info.soname);
	return cl->n++;
}

/* ld.so does not search for a name that an object already loaded answers
 * to: its path, the DT_NEEDED string that loaded it, or its DT_SONAME. */
static size_t find_by_name(const struct closure *cl, const char *name)
{
	for (size_t i = 0; i < cl->n; i++)
		if (slate_strv_contains(&cl->objs[i].names, name))
			return i;
	return NO_OBJ;
}

/* ld.so maps a file only once, whatever name reached it. */
static size_t find_by_file(const struct closure *cl, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < cl->n; i++)
		if (cl->objs[i].dev == dev && cl->objs[i].ino == ino)
			return i;
	return NO_OBJ;
}

static void out_add(struct closure_ctx *cx, const char *path)
{
	for (size_t i = 0; i < cx->nroots; i++)
		if (strcmp(cx->roots[i], path) == 0)
			return;
	if (!slate_strv_contains(cx->out, path))
		slate_strv_push(cx->out, path);
}

/* Open and read one file. 1: it exists (c filled; c->info.is_elf says
 * whether it is ELF), 0: missing or unreadable, -1: error.
 * *fd_out, when not NULL, receives the open fd. */
static int open_elf(struct closure_ctx *cx, const char *path, struct candidate *c, int *fd_out, slate_error_t *err)
{
	cleanup_close int fd = root_open(cx->rootfd, path);
	struct stat st;

	memset(c, 0, sizeof(*c));
	if (fd < 0)
		return is_absent_errno(errno) ? 0 : slate_error_sys(err, errno, "open `%s`", path);
	if (read_elf_fd(fd, path, &c->info, &st, err) < 0)
		return -1;
	c->regular = S_ISREG(st.st_mode);
	c->path = xstrdup(path);
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (fd_out)
		*fd_out = steal_fd(&fd);
	return 1;
}

/* A candidate for a DT_NEEDED of req. 1: usable, 0: skip it and search on
 * (like ld.so, which passes over files of another class or machine, e.g.
 * the 32-bit libraries in /usr/lib32), -1: error (not ELF at all: ld.so
 * stops with "invalid ELF header" there). */
static int try_candidate(struct closure *cl, const char *path, const struct elf_obj *req, struct candidate *c,
			 slate_error_t *err)
{
	int r = open_elf(cl->cx, path, c, NULL, err);

	if (r <= 0)
		return r;
	if (!c->regular) {
		candidate_free(c);
		return 0;
	}
	if (!c->info.is_elf) {
		candidate_free(c);
		return slate_error_refuse(err, "`%s`, found for `%s`, is not an ELF file", path, req->path);
	}
	if (c->info.elf_class != req->info.elf_class || c->info.machine != req->info.machine) {
		candidate_free(c);
		return 0;
	}
	return 1;
}

/* Append an object's DT_RPATH or DT_RUNPATH entries, expanded. Empty and
 * relative entries name the loader's working directory, which a bundle
 * cannot know, so they are left out. */
static void add_expanded(struct slate_strv *list, const struct slate_strv *entries, const struct elf_obj *o)
{
	for (size_t i = 0; i < entries->n; i++) {
		char *d = expand_dst(entries->v[i], o->origin, o->info.elf_class, o->info.machine);
		size_t len = d ? strlen(d) : 0;

		while (len > 1 && d[len - 1] == '/')
			d[--len] = '\0';
		if (d == NULL || d[0] != '/' || slate_strv_contains(list, d))
			free(d);
		else
			slate_strv_push_owned(list, d);
	}
}

/* The directories ld.so tries for a DT_NEEDED of objs[i], in its order:
 * without a DT_RUNPATH on objs[i], the DT_RPATH of objs[i] and of the
 * objects that loaded it, up the chain (an object with DT_RUNPATH has its
 * DT_RPATH ignored); LD_LIBRARY_PATH (ignored: a bundle does not inherit
 * the build environment); objs[i]'s DT_RUNPATH; ld.so.cache, which is the
 * ld.so.conf dirs in order; the trusted dirs. */
static void search_list(const struct closure *cl, size_t i, struct slate_strv *list)
{
	const struct elf_obj *req = &cl->objs[i];

	if (req->info.runpath.n == 0)
		for (size_t l = i; l != NO_OBJ; l = cl->objs[l].loader)
			if (cl->objs[l].info.runpath.n == 0)
				add_expanded(list, &cl->objs[l].info.rpath, &cl->objs[l]);
	add_expanded(list, &req->info.runpath, req);
	for (size_t k = 0; k < cl->cx->sysdirs.n; k++)
		if (!slate_strv_contains(list, cl->cx->sysdirs.v[k]))
			slate_strv_push(list, cl->cx->sysdirs.v[k]);
}

static int search_dirs(struct closure *cl, size_t i, const char *name, struct candidate *c, slate_error_t *err)
{
	struct slate_strv list = { 0 };
	int r = 0;

	search_list(cl, i, &list);
	for (size_t k = 0; k < list.n && r == 0; k++) {
		const char *dir = list.v[k];
		cleanup_free char *path = xasprintf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name);
		r = try_candidate(cl, path, &cl->objs[i], c, err);
	}
	slate_strv_free(&list);
	return r;
}

/* A found library joins the namespace, or is a new name for a file that
 * is already in it. Either way the loader opens this path. */
static void add_found(struct closure *cl, size_t loader, const char *name, struct candidate *c)
{
	size_t j = find_by_file(cl, c->dev, c->ino);

	out_add(cl->cx, c->path);
	if (j == NO_OBJ)
		j = obj_add(cl, c, NULL, loader);
	else
		candidate_free(c);
	if (!slate_strv_contains(&cl->objs[j].names, name))
		slate_strv_push(&cl->objs[j].names, name);
}

static int resolve_needed(struct closure *cl, size_t i, const char *needed, slate_error_t *err)
{
	const struct elf_obj *req = &cl->objs[i];
	cleanup_free char *name = expand_dst(needed, req->origin, req->info.elf_class, req->info.machine);
	struct candidate c = { 0 };
	int r;

	if (name == NULL)
		return slate_error_refuse(err, "cannot expand `%s` needed by `%s`", needed, req->path);
	if (find_by_name(cl, name) != NO_OBJ)
		return 0;
	if (strchr(name, '/') == NULL)
		r = search_dirs(cl, i, name, &c, err);
	else if (name[0] == '/')
		r = try_candidate(cl, name, req, &c, err);
	else
		return slate_error_refuse(err, "`%s` needed by `%s` is relative to the working directory", needed,
					  req->path);
	if (r < 0)
		return -1;
	if (r == 0)
		return slate_error_refuse(err, "`%s` needed by `%s` not found", needed, cl->objs[i].path);
	add_found(cl, i, name, &c);
	return 0;
}

/* The kernel hands ld.so the executable's resolved path, so $ORIGIN of a
 * root follows its symlinks; for the libraries it is the path as found. */
static char *resolved_path(const struct closure_ctx *cx, int fd, const char *path)
{
	char proc[64], link[PATH_MAX];
	size_t plen = strlen(cx->real_prefix);
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n <= 0)
		return xstrdup(path);
	link[n] = '\0';
	if (strncmp(link, cx->real_prefix, plen) != 0 || link[plen] != '/')
		return xstrdup(path);
	return xstrdup(link + plen);
}

/* 1: the root is ELF and is objs[0], 0: not ELF (ignored), -1: error. */
static int add_root(struct closure *cl, const char *path, slate_error_t *err)
{
	struct candidate c;
	cleanup_close int fd = -1;
	cleanup_free char *real = NULL;
	int r = open_elf(cl->cx, path, &c, &fd, err);

	if (r == 0)
		return slate_error_sys(err, errno, "open `%s`", path);
	if (r < 0)
		return -1;
	if (!c.info.is_elf) {
		candidate_free(&c);
		return 0;
	}
	real = resolved_path(cl->cx, fd, path);
	obj_add(cl, &c, real, NO_OBJ);
	return 1;
}

/* PT_INTERP is opened by the kernel; ld.so is then loaded under that path
 * and its DT_SONAME, so libc's DT_NEEDED on it is already satisfied. */
static int add_interp(struct closure *cl, slate_error_t *err)
{
	const char *interp = cl->objs[0].info.interp;
	struct candidate c;
	int r;

	if (interp == NULL || find_by_name(cl, interp) != NO_OBJ)
		return 0;
	if (interp[0] != '/')
		return slate_error_refuse(err, "interpreter `%s` of `%s` is not absolute", interp, cl->objs[0].path);
	r = open_elf(cl->cx, interp, &c, NULL, err);
	if (r < 0)
		return -1;
	if (r == 0 || !c.info.is_elf || c.info.elf_class != cl->objs[0].info.elf_class ||
	    c.info.machine != cl->objs[0].info.machine) {
		candidate_free(&c);
		return slate_error_refuse(err, "interpreter `%s` needed by `%s` not found", interp, cl->objs[0].path);
	}
	add_found(cl, NO_OBJ, interp, &c);
	return 0;
}

/* Each root gets its own namespace: nginx and php-fpm are separate
 * processes, and a library one of them finds must not hide where the
 * other would look. Objects are processed breadth-first, as ld.so does. */
static int closure_of_root(struct closure_ctx *cx, const char *root, slate_error_t *err)
{
	struct closure cl = { .cx = cx };
	int r = add_root(&cl, root, err);

	if (r > 0)
		r = add_interp(&cl, err);
	for (size_t i = 0; r >= 0 && i < cl.n; i++)
		for (size_t k = 0; r >= 0 && k < cl.objs[i].info.needed.n; k++)
			r = resolve_needed(&cl, i, cl.objs[i].info.needed.v[k], err);
	closure_free(&cl);
	return r < 0 ? -1 : 0;
}

static int ctx_init(struct closure_ctx *cx, const char *sysroot, slate_error_t *err)
{
	char *real;

	if ((cx->rootfd = open_sysroot(sysroot, err)) < 0)
		return -1;
	if (!(real = realpath(sysroot, NULL)))
		return slate_error_sys(err, errno, "resolve sysroot `%s`", sysroot);
	cx->real_prefix = sysroot_prefix(real);
	free(real);
	return slate_elf_ldconf_dirs(sysroot, &cx->sysdirs, err);
}

int slate_elf_closure(const char *sysroot, const char *const *roots, size_t nroots, struct slate_strv *out,
		      slate_error_t *err)
{
	struct closure_ctx cx = { .rootfd = -1, .roots = roots, .nroots = nroots, .out = out };
	int r = ctx_init(&cx, sysroot, err);

	for (size_t i = 0; r == 0 && i < nroots; i++)
		r = closure_of_root(&cx, roots[i], err);
	if (cx.rootfd >= 0)
		close(cx.rootfd);
	free(cx.real_prefix);
	slate_strv_free(&cx.sysdirs);
	return r;
}
