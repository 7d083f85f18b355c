/* slate-bundle: dpkg status parsing (see dpkg.h). */
#include <string.h>

#include "dpkg.h"
#include "slate/util.h"

struct stanza {
	char *package, *version, *status, *arch;
};

static void stanza_reset(struct stanza *s)
{
	free(s->package);
	free(s->version);
	free(s->status);
	free(s->arch);
	memset(s, 0, sizeof(*s));
}

/* Keep an installed package; a native (or arch: all) entry wins over a
 * foreign-architecture one of the same name. */
static void stanza_commit(struct stanza *s, json_t *out)
{
	if (s->package && s->version && s->status && strstr(s->status, " installed") &&
	    strncmp(s->status, "install ok", 10) == 0) {
		bool foreign = s->arch && strcmp(s->arch, "all") != 0 && strcmp(s->arch, "amd64") != 0;
		if (!foreign || json_object_get(out, s->package) == NULL)
			json_object_set_new(out, s->package, json_string(s->version));
	}
	stanza_reset(s);
}

static void field(char **dst, const char *line, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(line, name, n) == 0 && line[n] == ':') {
		const char *v = line + n + 1;
		while (*v == ' ')
			v++;
		free(*dst);
		*dst = xstrndup(v, strcspn(v, "\n"));
	}
}

json_t *dpkg_installed(const char *status_path, slate_error_t *err)
{
	cleanup_free char *buf = slate_read_file(status_path, 256u << 20, NULL, err);
	struct stanza s = { 0 };
	json_t *out;
	char *line;

	if (buf == NULL)
		return NULL;
	out = json_object();
	/* strtok_r drops empty lines, so stanza ends are found by peeking. */
	for (line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (line[0] == '\0')
			stanza_commit(&s, out);
		field(&s.package, line, "Package");
		field(&s.version, line, "Version");
		field(&s.status, line, "Status");
		field(&s.arch, line, "Architecture");
		line = nl ? nl + 1 : NULL;
	}
	stanza_commit(&s, out);
	return out;
}

char *dpkg_upstream_version(const char *version)
{
	const char *colon = strchr(version, ':');
	const char *start = colon ? colon + 1 : version;
	const char *dash = strrchr(start, '-');

	return dash ? xstrndup(start, (size_t)(dash - start)) : xstrdup(start);
}
