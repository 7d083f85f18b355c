/* slate-bundle keygen: make an Ed25519 signing key pair. */
#include <getopt.h>
#include <stdio.h>

#include "commands.h"
#include "slate/sign.h"

static const char usage[] = "slate-bundle keygen -o FILE";
static const char help[] =
	"usage: slate-bundle keygen -o FILE\n\n"
	"Write a new Ed25519 private key to FILE (PKCS#8 PEM, mode 0600) and its\n"
	"public key to FILE.pub (SubjectPublicKeyInfo PEM). Refuses to overwrite\n"
	"either file. Keep FILE in CI's secrets; give FILE.pub to the hosts.\n"
	"Prints the key id.\n";

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = { { "output", required_argument, NULL, 'o' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *out = NULL;
	slate_error_t err = { 0 };
	struct slate_key key;
	int c;

	optind = 0; /* 0: glibc reinitialises its state (main parsed with "+") */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'h': return fputs(help, stdout), 0;
		default: return usage_error(usage, "keygen: bad option `%s`", argv[optind - 1]);
		}
	}
	if (out == NULL || optind != argc)
		return usage_error(usage, "keygen: needs -o FILE and nothing else");
	if (slate_key_generate(out, &key, &err) < 0)
		return report(&err);
	printf("%s\n", key.id);
	slate_key_free(&key);
	return 0;
}
