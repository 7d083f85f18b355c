/* slate run: verify a bundle and run it as an instance, in the foreground. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "env.h"
#include "instance.h"
#include "store.h"

static const char usage[] =
	"slate [--root DIR] run [--key PUB | --keys DIR] [--env K=V] [--env-file F] [--memory SIZE] [--pids N] "
	"[--cpus N] [--tmpfs-size SIZE] [--name NAME] [--user USER] [--seccomp-profile FILE] BUNDLE [-- CMD ARGS...]";
static const char help[] =
	"usage: slate [--root DIR] run [OPTIONS] BUNDLE [-- CMD ARGS...]\n\n"
	"Verify BUNDLE against the trusted keys, unpack it once into the store, and run\n"
	"it as an instance: new namespaces (user, mount, pid, uts, ipc, net, cgroup), the\n"
	"store copy as a read-only lower layer and a fresh tmpfs as the upper, no\n"
	"capabilities beyond what the image's masters need, no_new_privs, a seccomp\n"
	"allowlist, cgroup limits, and only a loopback network. Without CMD the image's\n"
	"processes start (php-fpm and nginx); with CMD that command alone runs, as the\n"
	"image's user (www-data) unless --user says otherwise, with no capability.\n"
	"CMD's stdin, stdout and stderr are relayed through pipes (no fd of slate's\n"
	"enters the instance); the exit status is the instance's.\n\n"
	"  --key PUB           trust this public key; repeatable\n"
	"  --keys DIR          trust every DIR/*.pub (default " SLATE_DEFAULT_KEYS
	")\n"
	"  --env K=V           set a variable in the instance; repeatable\n"
	"  --env-file F        KEY=VALUE lines (root's file, no symbolic link, not writable by\n"
	"                      group or others, not readable by others)\n"
	"  --memory SIZE       memory limit, no swap (default 1G)\n"
	"  --pids N            process limit (default 1024)\n"
	"  --cpus N            CPU limit, e.g. 1.5 (default: none)\n"
	"  --tmpfs-size SIZE   everything the instance may write (default 256M, 65536 inodes)\n"
	"  --name NAME         hostname and cgroup name (default: the bundle's name)\n"
	"  --user USER         user for CMD: name or UID[:GID] (default: the image's user)\n"
	"  --seccomp-profile F seccomp profile (JSON, see docs/SECCOMP.md; default: slate's)\n";

struct run_opts {
	struct slate_keyring kr;
	bool keys_given;
	struct slate_strv env;
	struct instance_opts inst;
	const char *bundle;
};

int keys_finish(struct slate_keyring *kr, bool given, slate_error_t *err)
{
	struct stat st;

	if (!given) {
		if (stat(SLATE_DEFAULT_KEYS, &st) < 0)
			return slate_error_refuse(err,
						  "no trusted key: give --key PUB or --keys DIR, or put *.pub keys "
						  "in " SLATE_DEFAULT_KEYS);
		if (slate_keyring_add_dir(kr, SLATE_DEFAULT_KEYS, err) < 0)
			return -1;
	}
	if (kr->n == 0)
		return slate_error_refuse(err, "no trusted key");
	return 0;
}

/* A name is a hostname and a path component. */
static int check_name(const char *name, slate_error_t *err)
{
	size_t n = strlen(name);

	if (n == 0 || n > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n ||
	    name[0] == '-')
		return slate_error_usage(err, "name `%s`: use 1-63 letters, digits and dashes", name);
	return 0;
}

static int parse_opt(struct run_opts *o, int c, const char *arg, slate_error_t *err)
{
	uint64_t v = 0;

	switch (c) {
	case 'k': o->keys_given = true; return slate_keyring_add_file(&o->kr, arg, err);
	case 'K': o->keys_given = true; return slate_keyring_add_dir(&o->kr, arg, err);
	case 'e': return env_add(&o->env, arg, err);
	case 'E': return env_add_file(&o->env, arg, err);
	case 'm': return slate_parse_size(arg, &o->inst.limits.memory, err);
	case 'p':
		if (slate_parse_u64(arg, &v, err) < 0 || v == 0)
			return slate_error_usage(err, "--pids needs a positive number");
		o->inst.limits.pids = v;
		return 0;
	case 'c': return slate_parse_cpus(arg, &o->inst.limits.cpu_millis, err);
	case 't':
		if (slate_parse_size(arg, &o->inst.tmpfs_size, err) < 0 || o->inst.tmpfs_size < (1 << 20))
			return slate_error_usage(err, "--tmpfs-size needs at least 1M");
		return 0;
	case 'n': o->inst.name = arg; return check_name(arg, err);
	case 'u': o->inst.user = arg; return 0;
	case 's': o->inst.seccomp_profile = arg; return 0;
	}
	return slate_error_usage(err, "bad option");
}

static int parse_args(int argc, char **argv, struct run_opts *o, slate_error_t *err)
{
	static const struct option opts[] = { { "key", required_argument, NULL, 'k' },
					      { "keys", required_argument, NULL, 'K' },
					      { "env", required_argument, NULL, 'e' },
					      { "env-file", required_argument, NULL, 'E' },
					      { "memory", required_argument, NULL, 'm' },
					      { "pids", required_argument, NULL, 'p' },
					      { "cpus", required_argument, NULL, 'c' },
					      { "tmpfs-size", required_argument, NULL, 't' },
					      { "name", required_argument, NULL, 'n' },
					      { "user", required_argument, NULL, 'u' },
					      { "seccomp-profile", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	/* '+': options end at BUNDLE; what follows `--` is the command. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h')
			return 1;
		if (c == '?')
			return slate_error_usage(err, "run: bad option `%s`", argv[optind - 1]);
		if (parse_opt(o, c, optarg, err) < 0)
			return -1;
	}
	if (optind >= argc)
		return slate_error_usage(err, "run: needs a BUNDLE");
	o->bundle = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	else if (optind < argc)
		return slate_error_usage(err, "run: put the command after `--`");
	if (optind < argc)
		o->inst.cmd = argv + optind;
	return 0;
}

static void defaults(struct run_opts *o, const struct slate_ctx *ctx)
{
	o->inst.root = ctx->root;
	o->inst.limits.memory = SLATE_DEFAULT_MEMORY;
	o->inst.limits.pids = SLATE_DEFAULT_PIDS;
	o->inst.tmpfs_size = SLATE_DEFAULT_TMPFS_SIZE;
	o->inst.tmpfs_inodes = SLATE_DEFAULT_TMPFS_INODES;
}

/* The bundle's name, made a valid hostname. */
static char *name_from(const struct slate_manifest *m)
{
	char *n = xstrndup(m->name[0] ? m->name : "slate", 63);

	for (char *c = n; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
			*c = '-';
	return n;
}

int cmd_run(struct slate_ctx *ctx, int argc, char **argv)
{
	struct run_opts o = { 0 };
	struct slate_stored stored = { 0 };
	slate_error_t err = { 0 };
	cleanup_free char *name = NULL;
	int code = 0, r;

	defaults(&o, ctx);
	r = parse_args(argc, argv, &o, &err);
	if (r > 0)
		return fputs(help, stdout), 0;
	if (r < 0) {
		code = err.kind == SLATE_EXIT_USAGE ? usage_error(usage, "%s", err.msg) : report(&err);
		goto out;
	}
	if (keys_finish(&o.kr, o.keys_given, &err) < 0 ||
	    slate_store_add(ctx->root, o.bundle, &o.kr, NULL, NULL, &stored, &err) < 0) {
		code = report(&err);
		goto out;
	}
	if (o.inst.name == NULL)
		o.inst.name = name = name_from(&stored.m);
	env_defaults(&o.env, o.inst.name);
	o.inst.env = o.env.v;
	o.inst.bundle = &stored;
	if (instance_run(&o.inst, &code, &err) < 0)
		code = report(&err);
out:
	slate_stored_free(&stored);
	slate_keyring_free(&o.kr);
	slate_strv_free(&o.env);
	return code;
}
