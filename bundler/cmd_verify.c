/* slate-bundle verify: check a bundle against trusted keys, in one pass. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "commands.h"
#include "slate/bundle.h"
#include "slate/policy.h"
#include "slate/util.h"

static const char usage[] =
	"slate-bundle verify (--key PUB ... | --keys DIR) [--max-entries N] [--max-size SIZE] [--max-file-size SIZE] "
	"BUNDLE";
static const char help[] =
	"usage: slate-bundle verify (--key PUB ... | --keys DIR) [OPTIONS] BUNDLE\n\n"
	"Check BUNDLE in one streaming pass: the manifest's Ed25519 signature against\n"
	"the trusted public keys, then every member against the manifest (path, type,\n"
	"mode, size, SHA-256), refusing anything unlisted, missing or unsafe, and\n"
	"settings or an image that slate would refuse to run (docs/SECURITY.md).\n"
	"Prints the bundle id when valid.\n\n"
	"  --key PUB           trust this public key (PEM); repeatable\n"
	"  --keys DIR          trust every DIR/*.pub\n"
	"  --max-entries N     refuse more entries than N (default 1000000)\n"
	"  --max-size SIZE     refuse more content than SIZE bytes (default 16G)\n"
	"  --max-file-size SIZE  refuse a file larger than SIZE (default 4G)\n\n"
	"exit codes: 0 valid, 1 refused (the first problem is named), 2 usage, 3 system error\n";

/* A signed manifest that the runtime would refuse is not valid either. */
static int check_policy(void *ctx, const struct slate_manifest *m, const char *id, slate_error_t *err)
{
	(void)ctx;
	(void)id;
	return slate_policy_check(m, err);
}

int cmd_verify(int argc, char **argv)
{
	const struct slate_bundle_visitor policy = { .manifest = check_policy };
	static const struct option opts[] = { { "key", required_argument, NULL, 'k' },
					      { "keys", required_argument, NULL, 'K' },
					      { "max-entries", required_argument, NULL, 'E' },
					      { "max-size", required_argument, NULL, 'S' },
					      { "max-file-size", required_argument, NULL, 'F' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct slate_keyring kr = { 0 };
	struct slate_limits lim;
	slate_error_t err = { 0 };
	char id[SLATE_SHA256_HEX];
	uint64_t v;
	cleanup_close int fd = -1;
	int c, r = -1;

	slate_limits_default(&lim);
	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': r = slate_keyring_add_file(&kr, optarg, &err); break;
		case 'K': r = slate_keyring_add_dir(&kr, optarg, &err); break;
		case 'E':
			r = slate_parse_u64(optarg, &v, &err);
			lim.max_entries = v;
			break;
		case 'S':
			r = slate_parse_size(optarg, &v, &err);
			lim.max_total_bytes = v;
			break;
		case 'F':
			r = slate_parse_size(optarg, &v, &err);
			lim.max_file_bytes = v;
			break;
		case 'h': slate_keyring_free(&kr); return fputs(help, stdout), 0;
		default:
			slate_keyring_free(&kr);
			return usage_error(usage, "verify: bad option `%s`", argv[optind - 1]);
		}
		if (r < 0 && err.kind == SLATE_EXIT_USAGE) {
			slate_keyring_free(&kr);
			return usage_error(usage, "verify: %s", err.msg);
		}
		if (r < 0)
			goto out;
	}
	r = -1;
	if (optind + 1 != argc || kr.n == 0) {
		slate_keyring_free(&kr);
		return usage_error(usage, "verify: needs at least one trusted key and one BUNDLE");
	}
	fd = open(argv[optind], O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		slate_error_sys(&err, errno, "open `%s`", argv[optind]);
		goto out;
	}
	r = slate_bundle_verify_fd(fd, argv[optind], &kr, &lim, &policy, NULL, id, &err);
	if (r == 0)
		printf("%s\n", id);
out:
	slate_keyring_free(&kr);
	return r == 0 ? 0 : report(&err);
}
