/* Unit tests for bundler/elf.c: ELF reading, ld.so.conf parsing and the
 * shared-library closure, on this host's real binaries and on a fake
 * sysroot whose ELF files the tests write byte by byte. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "elfdeps.h"

/* ---- writing minimal ELF files ---- */

#define VBASE 0x400000u
#define IMG_MAX 4096

struct elf_spec {
	int cls;     /* 0: ELFCLASS64 */
	int machine; /* 0: EM_X86_64 for 64-bit, EM_386 for 32-bit */
	const char *interp;
	const char *needed[4];
	const char *runpath, *rpath, *soname;
	bool is_static; /* no PT_DYNAMIC */
};

struct elf_img {
	unsigned char buf[IMG_MAX];
	size_t len;
	bool is64;
	size_t phoff, nph, dyn_off, ndyn, str_off, str_len;
};

static size_t img_add_str(struct elf_img *img, const char *s)
{
	size_t off = img->str_len;

	memcpy(img->buf + img->str_off + off, s, strlen(s) + 1);
	img->str_len += strlen(s) + 1;
	return off;
}

/* A segment at file offset off, mapped at VBASE + vaddr_off. */
static void put_phdr_at(struct elf_img *img, size_t i, uint32_t type, uint64_t off, uint64_t vaddr_off, uint64_t size)
{
	if (img->is64) {
		Elf64_Phdr p = { .p_type = type, .p_offset = off, .p_vaddr = VBASE + vaddr_off, .p_paddr = VBASE + vaddr_off,
				 .p_filesz = size, .p_memsz = size, .p_flags = PF_R, .p_align = 8 };
		memcpy(img->buf + img->phoff + i * sizeof(p), &p, sizeof(p));
	} else {
		Elf32_Phdr p = { .p_type = type, .p_offset = (Elf32_Off)off, .p_vaddr = (Elf32_Addr)(VBASE + vaddr_off),
				 .p_filesz = (Elf32_Word)size, .p_memsz = (Elf32_Word)size, .p_flags = PF_R, .p_align = 4 };
		memcpy(img->buf + img->phoff + i * sizeof(p), &p, sizeof(p));
	}
}

static void put_phdr(struct elf_img *img, size_t i, uint32_t type, uint64_t off, uint64_t size)
{
	put_phdr_at(img, i, type, off, off, size);
}

static size_t dyn_size(const struct elf_img *img)
{
	return img->is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
}

static void put_dyn(struct elf_img *img, size_t i, int64_t tag, uint64_t val)
{
	if (img->is64) {
		Elf64_Dyn d = { .d_tag = tag, .d_un.d_val = val };
		memcpy(img->buf + img->dyn_off + i * sizeof(d), &d, sizeof(d));
	} else {
		Elf32_Dyn d = { .d_tag = (Elf32_Sword)tag, .d_un.d_val = (Elf32_Word)val };
		memcpy(img->buf + img->dyn_off + i * sizeof(d), &d, sizeof(d));
	}
}

static void put_ehdr(struct elf_img *img, int machine)
{
	unsigned char ident[EI_NIDENT] = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3,
					   img->is64 ? ELFCLASS64 : ELFCLASS32, ELFDATA2LSB, EV_CURRENT };

	if (img->is64) {
		Elf64_Ehdr e = { .e_type = ET_DYN, .e_machine = (Elf64_Half)machine, .e_version = EV_CURRENT,
				 .e_phoff = img->phoff, .e_ehsize = sizeof(e), .e_phentsize = sizeof(Elf64_Phdr),
				 .e_phnum = (Elf64_Half)img->nph };
		memcpy(e.e_ident, ident, EI_NIDENT);
		memcpy(img->buf, &e, sizeof(e));
	} else {
		Elf32_Ehdr e = { .e_type = ET_DYN, .e_machine = (Elf32_Half)machine, .e_version = EV_CURRENT,
				 .e_phoff = (Elf32_Off)img->phoff, .e_ehsize = sizeof(e),
				 .e_phentsize = sizeof(Elf32_Phdr), .e_phnum = (Elf32_Half)img->nph };
		memcpy(e.e_ident, ident, EI_NIDENT);
		memcpy(img->buf, &e, sizeof(e));
	}
}

/* Layout: Ehdr, Phdrs (PT_LOAD over the whole file, PT_DYNAMIC,
 * PT_INTERP), the string table at 0x200 (the interpreter path is in it
 * too), the dynamic section after it. */
static void build_elf(const struct elf_spec *s, struct elf_img *img)
{
	int64_t tags[16];
	uint64_t vals[16];
	size_t n = 0, interp_off = 0;

	memset(img, 0, sizeof(*img));
	img->is64 = s->cls != ELFCLASS32;
	img->phoff = img->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	img->nph = 1 + !s->is_static + (s->interp != NULL);
	img->str_off = 0x200;
	img_add_str(img, "");
	for (size_t i = 0; i < 4 && s->needed[i]; i++) {
		tags[n] = DT_NEEDED;
		vals[n++] = img_add_str(img, s->needed[i]);
	}
	if (s->runpath) {
		tags[n] = DT_RUNPATH;
		vals[n++] = img_add_str(img, s->runpath);
	}
	if (s->rpath) {
		tags[n] = DT_RPATH;
		vals[n++] = img_add_str(img, s->rpath);
	}
	if (s->soname) {
		tags[n] = DT_SONAME;
		vals[n++] = img_add_str(img, s->soname);
	}
	if (s->interp)
		interp_off = img->str_off + img_add_str(img, s->interp);
	tags[n] = DT_STRTAB, vals[n++] = VBASE + img->str_off;
	tags[n] = DT_STRSZ, vals[n++] = img->str_len;
	tags[n] = DT_NULL, vals[n++] = 0;
	img->dyn_off = (img->str_off + img->str_len + 7) & ~(size_t)7;
	img->ndyn = s->is_static ? 0 : n;
	for (size_t i = 0; i < img->ndyn; i++)
		put_dyn(img, i, tags[i], vals[i]);
	img->len = img->dyn_off + img->ndyn * dyn_size(img);
	assert_true(img->len <= IMG_MAX);
	put_phdr(img, 0, PT_LOAD, 0, img->len);
	if (!s->is_static)
		put_phdr(img, 1, PT_DYNAMIC, img->dyn_off, img->ndyn * dyn_size(img));
	if (s->interp)
		put_phdr(img, img->nph - 1, PT_INTERP, interp_off, strlen(s->interp) + 1);
	put_ehdr(img, s->machine ? s->machine : img->is64 ? EM_X86_64 : EM_386);
}

/* Change the value of the first dynamic entry with `tag`. */
static void set_dyn(struct elf_img *img, int64_t tag, uint64_t val)
{
	for (size_t i = 0; i < img->ndyn; i++) {
		Elf64_Dyn d;
		memcpy(&d, img->buf + img->dyn_off + i * sizeof(d), sizeof(d));
		if (d.d_tag == tag) {
			put_dyn(img, i, tag, val);
			return;
		}
	}
	fail_msg("no dynamic tag %lld", (long long)tag);
}

/* ---- a fake sysroot ---- */

static void mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		assert_true(mkdir(buf, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	assert_true(mkdir(buf, 0755) == 0 || errno == EEXIST);
}

static void write_at(const char *root, const char *rel, const void *data, size_t len)
{
	char path[PATH_MAX], dir[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void write_text_at(const char *root, const char *rel, const char *text)
{
	write_at(root, rel, text, strlen(text));
}

static void write_elf(const char *root, const char *rel, const struct elf_spec *s)
{
	struct elf_img img;

	build_elf(s, &img);
	write_at(root, rel, img.buf, img.len);
}

static void symlink_at(const char *root, const char *rel, const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s", root, rel);
	assert_int_equal(symlink(target, path), 0);
}

static bool strv_has_suffix(const struct slate_strv *sv, const char *suffix)
{
	for (size_t i = 0; i < sv->n; i++) {
		size_t a = strlen(sv->v[i]), b = strlen(suffix);
		if (a >= b && strcmp(sv->v[i] + a - b, suffix) == 0)
			return true;
	}
	return false;
}

/* The fake tree that the ld.so.conf and closure tests share. */
static int fake_root_setup(void **state)
{
	char *root = make_tmpdir();

	assert_non_null(root);

	write_text_at(root, "/etc/ld.so.conf",
		   "# the system's configuration\n\ninclude /etc/ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n"
		   "   /opt/conf1/   \n");
	write_text_at(root, "/etc/ld.so.conf.d/a.conf", "/opt/confA  # a trailing comment\n/opt/confA/\n");
	write_text_at(root, "/etc/ld.so.conf.d/b.conf", "include ../extra.d/*.conf\n/opt/confB\n");
	write_text_at(root, "/etc/ld.so.conf.d/notes.txt", "/opt/not-a-conf-file\n");
	write_text_at(root, "/etc/extra.d/x.conf", "/opt/confX\nrelative/dir\n");

	write_elf(root, "/app/bin/prog",
		  &(struct elf_spec){ .interp = "/lib64/ld-fake.so.2",
				      .needed = { "liba.so.1", "libr.so.1", "libc.so.6" },
				      .runpath = "$ORIGIN/../lib:/opt/rp" });
	/* Absolute symlink: must resolve inside the fake root, not the host. */
	mkdir_p(root);
	symlink_at(root, "/lib64", "/usr/lib64");
	write_elf(root, "/usr/lib64/ld-fake.so.2", &(struct elf_spec){ .soname = "ld-fake.so.2" });
	write_elf(root, "/usr/lib/x86_64-linux-gnu/libc.so.6",
		  &(struct elf_spec){ .soname = "libc.so.6", .needed = { "ld-fake.so.2" } });
	write_elf(root, "/app/lib/liba.so.1", &(struct elf_spec){ .soname = "liba.so.1", .needed = { "libb.so.1" } });
	/* libb needs liba back: the cycle must end. A 32-bit libb comes first
	 * in the search and must be passed over. */
	write_elf(root, "/opt/confA/libb.so.1", &(struct elf_spec){ .cls = ELFCLASS32, .soname = "libb.so.1" });
	write_elf(root, "/opt/confX/libb.so.1", &(struct elf_spec){ .soname = "libb.so.1", .needed = { "liba.so.1" } });
	/* RUNPATH /opt/rp wins over ld.so.conf's /opt/confA. */
	write_elf(root, "/opt/confA/libr.so.1", &(struct elf_spec){ .soname = "libr.so.1" });
	write_elf(root, "/opt/rp/libr.so.1", &(struct elf_spec){ .soname = "libr.so.1" });
	*state = root;
	return 0;
}

static int fake_root_teardown(void **state)
{
	rm_tree(*state);
	free(*state);
	return 0;
}

/* ---- the host's real binaries ---- */

static void test_host_binary(void **state)
{
	const char *bins[] = { "/usr/sbin/nginx", "/usr/sbin/php-fpm8.2" };
	slate_error_t err = { 0 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct slate_elf_info info;

		if (access(bins[i], R_OK) != 0)
			skip();
		assert_int_equal(slate_elf_read("/", bins[i], &info, &err), 0);
		assert_true(info.is_elf);
		assert_int_equal(info.elf_class, ELFCLASS64);
		assert_int_equal(info.machine, EM_X86_64);
		assert_string_equal(info.interp, "/lib64/ld-linux-x86-64.so.2");
		assert_true(slate_strv_contains(&info.needed, "libc.so.6"));
		slate_elf_info_free(&info);
	}
}

static void test_host_closure(void **state)
{
	const char *roots[] = { "/usr/sbin/php-fpm8.2" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };

	(void)state;
	if (access(roots[0], R_OK) != 0)
		skip();
	assert_int_equal(slate_elf_closure("/", roots, 1, &out, &err), 0);
	assert_true(strv_has_suffix(&out, "/libc.so.6"));
	assert_true(strv_has_suffix(&out, "/libssl.so.3"));
	assert_true(strv_has_suffix(&out, "/libxml2.so.2"));
	assert_true(slate_strv_contains(&out, "/lib64/ld-linux-x86-64.so.2"));
	assert_false(slate_strv_contains(&out, roots[0]));
	for (size_t i = 0; i < out.n; i++) {
		assert_true(out.v[i][0] == '/');
		assert_int_equal(access(out.v[i], R_OK), 0);
		for (size_t j = i + 1; j < out.n; j++)
			assert_string_not_equal(out.v[i], out.v[j]);
	}
	slate_strv_free(&out);
}

static void test_host_ldconf(void **state)
{
	struct slate_strv dirs = { 0 };
	slate_error_t err = { 0 };

	(void)state;
	assert_int_equal(slate_elf_ldconf_dirs("/", &dirs, &err), 0);
	assert_true(slate_strv_contains(&dirs, "/lib/x86_64-linux-gnu"));
	assert_true(slate_strv_contains(&dirs, "/usr/lib"));
	for (size_t i = 0; i < dirs.n; i++) {
		assert_true(dirs.v[i][0] == '/');
		for (size_t j = i + 1; j < dirs.n; j++)
			assert_string_not_equal(dirs.v[i], dirs.v[j]);
	}
	slate_strv_free(&dirs);
}

/* ---- reading single files ---- */

/* Write img into a fresh temporary root as /f and read it back. */
static int read_img(const unsigned char *buf, size_t len, struct slate_elf_info *info, slate_error_t *err)
{
	char *root = make_tmpdir();
	int r;

	assert_non_null(root);
	write_at(root, "/f", buf, len);
	r = slate_elf_read(root, "/f", info, err);
	rm_tree(root);
	free(root);
	return r;
}

static void test_read_fields(void **state)
{
	struct elf_img img;
	struct slate_elf_info info;
	slate_error_t err = { 0 };

	(void)state;
	build_elf(&(struct elf_spec){ .interp = "/lib/ld.so", .needed = { "liba.so", "libb.so" },
				      .runpath = "$ORIGIN:/x:", .rpath = "/r", .soname = "libme.so.1" },
		  &img);
	assert_int_equal(read_img(img.buf, img.len, &info, &err), 0);
	assert_true(info.is_elf);
	assert_int_equal(info.elf_class, ELFCLASS64);
	assert_string_equal(info.interp, "/lib/ld.so");
	assert_int_equal(info.needed.n, 2);
	assert_string_equal(info.needed.v[0], "liba.so");
	assert_string_equal(info.needed.v[1], "libb.so");
	assert_int_equal(info.runpath.n, 3);
	assert_string_equal(info.runpath.v[0], "$ORIGIN");
	assert_string_equal(info.runpath.v[1], "/x");
	assert_string_equal(info.runpath.v[2], "");
	assert_int_equal(info.rpath.n, 1);
	assert_string_equal(info.soname, "libme.so.1");
	slate_elf_info_free(&info);
}

static void test_read_elf32(void **state)
{
	struct elf_img img;
	struct slate_elf_info info;
	slate_error_t err = { 0 };

	(void)state;
	build_elf(&(struct elf_spec){ .cls = ELFCLASS32, .needed = { "libc.so.6" }, .interp = "/lib/ld-linux.so.2" },
		  &img);
	assert_int_equal(read_img(img.buf, img.len, &info, &err), 0);
	assert_int_equal(info.elf_class, ELFCLASS32);
	assert_int_equal(info.machine, EM_386);
	assert_string_equal(info.interp, "/lib/ld-linux.so.2");
	assert_int_equal(info.needed.n, 1);
	assert_string_equal(info.needed.v[0], "libc.so.6");
	slate_elf_info_free(&info);
}

static void test_read_not_elf(void **state)
{
	const char *texts[] = { "", "#!/bin/sh\necho hi\n", "\177EL" };
	struct slate_elf_info info;
	slate_error_t err = { 0 };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(read_img((const unsigned char *)texts[i], strlen(texts[i]), &info, &err), 0);
		assert_false(info.is_elf);
		assert_int_equal(info.needed.n, 0);
		slate_elf_info_free(&info);
	}
	assert_int_equal(err.kind, 0);
}

static void test_read_static(void **state)
{
	struct elf_img img;
	struct slate_elf_info info;
	slate_error_t err = { 0 };

	(void)state;
	build_elf(&(struct elf_spec){ .is_static = true }, &img);
	assert_int_equal(read_img(img.buf, img.len, &info, &err), 0);
	assert_true(info.is_elf);
	assert_null(info.interp);
	assert_int_equal(info.needed.n, 0);
	slate_elf_info_free(&info);
}

/* Expect slate_elf_read to fail on img with a message containing `what`. */
static void expect_malformed(const struct elf_img *img, size_t len, const char *what)
{
	struct slate_elf_info info;
	slate_error_t err = { 0 };

	assert_int_equal(read_img(img->buf, len, &info, &err), -1);
	if (strstr(err.msg, what) == NULL)
		fail_msg("error `%s` does not mention `%s`", err.msg, what);
	assert_int_equal(info.needed.n, 0);
	assert_null(info.interp);
}

static const struct elf_spec malformed_spec = { .interp = "/lib/ld.so", .needed = { "liba.so", "libb.so" } };

static void test_malformed_phoff(void **state)
{
	struct elf_img img;
	uint64_t off = 0xfffffffffffff000ull;
	uint16_t ent = 12;

	(void)state;
	build_elf(&malformed_spec, &img);
	memcpy(img.buf + offsetof(Elf64_Ehdr, e_phoff), &off, sizeof(off));
	expect_malformed(&img, img.len, "program headers");
	off = img.len - 8;
	memcpy(img.buf + offsetof(Elf64_Ehdr, e_phoff), &off, sizeof(off));
	expect_malformed(&img, img.len, "program headers");
	build_elf(&malformed_spec, &img);
	memcpy(img.buf + offsetof(Elf64_Ehdr, e_phentsize), &ent, sizeof(ent));
	expect_malformed(&img, img.len, "e_phentsize");
}

static void test_malformed_dynamic(void **state)
{
	struct elf_img img;

	(void)state;
	build_elf(&malformed_spec, &img);
	put_phdr(&img, 1, PT_DYNAMIC, img.len - 16, 64);
	expect_malformed(&img, img.len, "PT_DYNAMIC");
	put_phdr(&img, 1, PT_DYNAMIC, 0xffffffffffffff00ull, 64);
	expect_malformed(&img, img.len, "PT_DYNAMIC");
	/* Cut off before DT_NULL. */
	build_elf(&malformed_spec, &img);
	put_phdr(&img, 1, PT_DYNAMIC, img.dyn_off, (img.ndyn - 1) * sizeof(Elf64_Dyn));
	expect_malformed(&img, img.len, "DT_NULL");
	/* The file ends inside the dynamic section. */
	build_elf(&malformed_spec, &img);
	expect_malformed(&img, img.len - 4, "PT_DYNAMIC");
}

static void test_malformed_strtab(void **state)
{
	struct elf_img img;

	(void)state;
	build_elf(&malformed_spec, &img);
	set_dyn(&img, DT_STRTAB, 0x100);
	expect_malformed(&img, img.len, "DT_STRTAB");
	set_dyn(&img, DT_STRTAB, VBASE + img.len - 2);
	expect_malformed(&img, img.len, "DT_STRTAB");
	build_elf(&malformed_spec, &img);
	set_dyn(&img, DT_STRSZ, 1u << 30);
	expect_malformed(&img, img.len, "DT_STRSZ");
	/* A string offset past DT_STRSZ. */
	build_elf(&malformed_spec, &img);
	set_dyn(&img, DT_NEEDED, img.str_len + 5);
	expect_malformed(&img, img.len, "outside the string table");
	/* The PT_LOAD claims file bytes that are not there. */
	build_elf(&malformed_spec, &img);
	put_phdr_at(&img, 0, PT_LOAD, 0x10000, 0, img.len);
	expect_malformed(&img, img.len, "string table");
}

static void test_malformed_string(void **state)
{
	struct elf_img img;

	(void)state;
	/* DT_STRSZ ends in the middle of "libb.so": no NUL inside the table. */
	build_elf(&(struct elf_spec){ .needed = { "liba.so", "libb.so" } }, &img);
	set_dyn(&img, DT_STRSZ, 1 + 8 + 4);
	expect_malformed(&img, img.len, "not NUL-terminated");
	build_elf(&(struct elf_spec){ .interp = "/lib/ld.so" }, &img);
	put_phdr(&img, img.nph - 1, PT_INTERP, img.str_off + 1, 4);
	expect_malformed(&img, img.len, "PT_INTERP");
}

static void test_malformed_truncated_and_bigendian(void **state)
{
	struct elf_img img;

	(void)state;
	build_elf(&malformed_spec, &img);
	expect_malformed(&img, 10, "identification");
	expect_malformed(&img, 40, "ELF header");
	expect_malformed(&img, 100, "program headers");
	img.buf[EI_DATA] = ELFDATA2MSB;
	expect_malformed(&img, img.len, "big-endian");
	img.buf[EI_DATA] = ELFDATA2LSB;
	img.buf[EI_CLASS] = 7;
	expect_malformed(&img, img.len, "class");
}

/* Every prefix of a valid file and many random corruptions: an error or a
 * result, never a crash or an out-of-bounds read (ASan and valgrind run
 * this test). */
static void test_malformed_fuzz(void **state)
{
	struct elf_img good, img;
	uint32_t seed = 2463534242u;
	slate_error_t err = { 0 };

	(void)state;
	build_elf(&(struct elf_spec){ .interp = "/lib/ld.so", .needed = { "a.so", "b.so" }, .runpath = "$ORIGIN",
				      .soname = "s.so" },
		  &good);
	for (size_t len = 0; len <= good.len; len += 3) {
		struct slate_elf_info info;
		if (read_img(good.buf, len, &info, &err) == 0)
			slate_elf_info_free(&info);
	}
	for (int iter = 0; iter < 1500; iter++) {
		struct slate_elf_info info;
		img = good;
		for (int k = 0; k < 4; k++) {
			seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
			/* Mostly the headers and the dynamic section, where offsets live. */
			size_t at = seed % 3 ? (seed >> 8) % 0x120 : img.dyn_off + (seed >> 8) % (img.len - img.dyn_off);
			img.buf[at] = (unsigned char)(seed >> 24);
		}
		if (read_img(img.buf, img.len, &info, &err) == 0)
			slate_elf_info_free(&info);
	}
}

/* ---- ld.so.conf ---- */

static void test_ldconf_fake(void **state)
{
	const char *want[] = { "/opt/confA", "/opt/confX", "/opt/confB", "/opt/conf1", "/lib/x86_64-linux-gnu",
			       "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib" };
	struct slate_strv dirs = { 0 };
	slate_error_t err = { 0 };

	assert_int_equal(slate_elf_ldconf_dirs(*state, &dirs, &err), 0);
	for (size_t i = 0; i < dirs.n; i++)
		print_message("  dir %s\n", dirs.v[i]);
	assert_int_equal(dirs.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < dirs.n; i++)
		assert_string_equal(dirs.v[i], want[i]);
	slate_strv_free(&dirs);
}

static void test_ldconf_missing_and_cycle(void **state)
{
	char *root = make_tmpdir();
	struct slate_strv dirs = { 0 };
	slate_error_t err = { 0 };

	(void)state;
	assert_non_null(root);
	/* No /etc/ld.so.conf: only the trusted dirs. */
	assert_int_equal(slate_elf_ldconf_dirs(root, &dirs, &err), 0);
	assert_string_equal(dirs.v[dirs.n - 1], "/usr/lib");
	slate_strv_free(&dirs);
	write_text_at(root, "/etc/ld.so.conf", "include /etc/ld.so.conf\n");
	assert_int_equal(slate_elf_ldconf_dirs(root, &dirs, &err), -1);
	assert_non_null(strstr(err.msg, "nest too deeply"));
	slate_strv_free(&dirs);
	rm_tree(root);
	free(root);
}

/* ---- the closure in the fake root ---- */

static void test_closure_fake(void **state)
{
	const char *roots[] = { "/app/bin/prog" };
	const char *want[] = { "/lib64/ld-fake.so.2", "/app/bin/../lib/liba.so.1", "/opt/rp/libr.so.1",
			       "/usr/lib/x86_64-linux-gnu/libc.so.6", "/opt/confX/libb.so.1" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };

	if (slate_elf_closure(*state, roots, 1, &out, &err) < 0)
		fail_msg("closure: %s", err.msg);
	for (size_t i = 0; i < out.n; i++)
		print_message("  found %s\n", out.v[i]);
	/* Order too: the interpreter, then breadth-first like ld.so. */
	assert_int_equal(out.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < out.n; i++)
		assert_string_equal(out.v[i], want[i]);
	slate_strv_free(&out);
}

static void test_closure_missing(void **state)
{
	const char *roots[] = { "/app/bin/broken" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };

	write_elf(*state, "/app/bin/broken", &(struct elf_spec){ .needed = { "libc.so.6", "libmissing.so.7" } });
	assert_int_equal(slate_elf_closure(*state, roots, 1, &out, &err), -1);
	assert_string_equal(err.msg, "`libmissing.so.7` needed by `/app/bin/broken` not found");
	slate_strv_free(&out);
}

/* DT_RPATH applies to what the object's own dependencies need too; a
 * braced ${ORIGIN} and a DT_NEEDED that is a path. */
static void test_closure_rpath_origin(void **state)
{
	const char *root = *state;
	const char *roots[] = { "/app/bin/prog2", "/app/bin/prog3" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };

	write_elf(root, "/app/bin/prog2",
		  &(struct elf_spec){ .needed = { "libp.so.1", "/opt/abs/libabs.so", "$ORIGIN/../lib/liba.so.1" },
				      .runpath = "${ORIGIN}/../priv" });
	write_elf(root, "/app/priv/libp.so.1", &(struct elf_spec){ 0 });
	write_elf(root, "/opt/abs/libabs.so", &(struct elf_spec){ 0 });
	write_elf(root, "/app/bin/prog3", &(struct elf_spec){ .needed = { "libq.so.1" }, .rpath = "/opt/rpath" });
	write_elf(root, "/opt/rpath/libq.so.1", &(struct elf_spec){ .needed = { "libq2.so.1" } });
	write_elf(root, "/opt/confA/libq.so.1", &(struct elf_spec){ 0 });
	write_elf(root, "/opt/rpath/libq2.so.1", &(struct elf_spec){ 0 });
	if (slate_elf_closure(root, roots, 2, &out, &err) < 0)
		fail_msg("closure: %s", err.msg);
	assert_true(slate_strv_contains(&out, "/app/bin/../priv/libp.so.1"));
	assert_true(slate_strv_contains(&out, "/opt/abs/libabs.so"));
	assert_true(slate_strv_contains(&out, "/app/bin/../lib/liba.so.1"));
	assert_true(slate_strv_contains(&out, "/opt/rpath/libq.so.1"));
	assert_true(slate_strv_contains(&out, "/opt/rpath/libq2.so.1"));
	assert_false(slate_strv_contains(&out, "/opt/confA/libq.so.1"));
	slate_strv_free(&out);
}

/* A root reached through a symlink: $ORIGIN is its real directory, as the
 * kernel reports it to ld.so. Non-ELF roots (a script, a directory) are
 * ignored, a missing one is an error; roots are never in the output, even
 * when another root needs them. */
static void test_closure_roots(void **state)
{
	const char *root = *state;
	const char *roots[] = { "/app/link/prog", "/app/bin/script", "/opt/rp/libr.so.1", "/app/bin" };
	const char *missing[] = { "/app/bin/no-such-program" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };
	char link[PATH_MAX];

	snprintf(link, sizeof(link), "%s/app/link", root);
	mkdir_p(link);
	symlink_at(root, "/app/link/prog", "../bin/prog");
	write_text_at(root, "/app/bin/script", "#!/bin/sh\nexit 0\n");
	if (slate_elf_closure(root, roots, 4, &out, &err) < 0)
		fail_msg("closure: %s", err.msg);
	assert_true(slate_strv_contains(&out, "/app/bin/../lib/liba.so.1"));
	assert_true(slate_strv_contains(&out, "/opt/confX/libb.so.1"));
	assert_false(slate_strv_contains(&out, "/opt/rp/libr.so.1"));
	assert_false(slate_strv_contains(&out, "/app/bin/script"));
	assert_int_equal(slate_elf_closure(root, missing, 1, &out, &err), -1);
	assert_int_equal(err.errnum, ENOENT);
	assert_non_null(strstr(err.msg, "/app/bin/no-such-program"));
	slate_strv_free(&out);
}

/* Symlinks resolve inside the sysroot: ".." above its top stays there,
 * and a symlink loop is passed over like a missing file. */
static void test_closure_symlinks(void **state)
{
	const char *root = *state;
	const char *roots[] = { "/app/bin/prog5" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };

	write_elf(root, "/app/bin/prog5", &(struct elf_spec){ .needed = { "libu.so.1", "libloop.so.1" } });
	write_elf(root, "/usr/lib64/libu-real.so.1", &(struct elf_spec){ 0 });
	mkdir_p(root);
	write_text_at(root, "/opt/confB/.keep", "");
	symlink_at(root, "/opt/confB/libu.so.1", "../../../../../../../../../../usr/lib64/./libu-real.so.1");
	symlink_at(root, "/opt/confA/libloop.so.1", "libloop.so.1");
	write_elf(root, "/opt/confX/libloop.so.1", &(struct elf_spec){ 0 });
	if (slate_elf_closure(root, roots, 1, &out, &err) < 0)
		fail_msg("closure: %s", err.msg);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "/opt/confB/libu.so.1");
	assert_string_equal(out.v[1], "/opt/confX/libloop.so.1");
	slate_strv_free(&out);
}

static void test_closure_bad_candidate(void **state)
{
	const char *roots[] = { "/app/bin/prog4" };
	struct slate_strv out = { 0 };
	slate_error_t err = { 0 };

	write_elf(*state, "/app/bin/prog4", &(struct elf_spec){ .needed = { "libjunk.so.1" } });
	write_text_at(*state, "/opt/confA/libjunk.so.1", "INPUT(-lfoo)\n");
	assert_int_equal(slate_elf_closure(*state, roots, 1, &out, &err), -1);
	assert_non_null(strstr(err.msg, "is not an ELF file"));
	slate_strv_free(&out);
}

int main(void)
{
	const struct CMUnitTest host[] = {
		cmocka_unit_test(test_host_binary),
		cmocka_unit_test(test_host_closure),
		cmocka_unit_test(test_host_ldconf),
	};
	const struct CMUnitTest read[] = {
		cmocka_unit_test(test_read_fields),
		cmocka_unit_test(test_read_elf32),
		cmocka_unit_test(test_read_not_elf),
		cmocka_unit_test(test_read_static),
		cmocka_unit_test(test_malformed_phoff),
		cmocka_unit_test(test_malformed_dynamic),
		cmocka_unit_test(test_malformed_strtab),
		cmocka_unit_test(test_malformed_string),
		cmocka_unit_test(test_malformed_truncated_and_bigendian),
		cmocka_unit_test(test_malformed_fuzz),
		cmocka_unit_test(test_ldconf_missing_and_cycle),
	};
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_ldconf_fake),
		cmocka_unit_test(test_closure_fake),
		cmocka_unit_test(test_closure_missing),
		cmocka_unit_test(test_closure_rpath_origin),
		cmocka_unit_test(test_closure_roots),
		cmocka_unit_test(test_closure_symlinks),
		cmocka_unit_test(test_closure_bad_candidate),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("elf-host", host, NULL, NULL);
	failed += cmocka_run_group_tests_name("elf-read", read, NULL, NULL);
	failed += cmocka_run_group_tests_name("elf-fake-root", fake, fake_root_setup, fake_root_teardown);
	return failed ? 1 : 0;
}
