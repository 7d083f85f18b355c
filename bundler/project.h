/* slate-bundle: the project tree (slate.json settings, walk, excludes,
 * secrets, symlinks) packed below /app. */
#ifndef SLATE_BUNDLER_PROJECT_H
#define SLATE_BUNDLER_PROJECT_H

#include <stdbool.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/util.h"
#include "tree.h"

struct project {
	char *dir;
	char *name; /* from slate.json, or NULL */
	char *webroot;
	struct slate_strv writable, exclude, allow_secrets;
	bool dereference;
};

/* Read DIR/slate.json if present (defaults otherwise; unknown keys are
 * refused by name) and check the settings. */
int project_load(const char *dir, struct project *p, slate_error_t *err);
void project_free(struct project *p);
/* Walk the project into t below app/: always skips .git and
 * node_modules and the exclude globs; refuses secrets (unless excluded or
 * allowed), special files, dangling links and links leaving the tree
 * (those are packed as their targets with dereference). Adds the
 * writable directories that do not exist and the generated nginx rules at
 * app/.slate/nginx.conf. */
int project_collect(struct project *p, struct tree *t, slate_error_t *err);
/* The manifest's `settings` object. */
json_t *project_settings(const struct project *p);
/* The nginx rules for this project's webroot and writable paths. */
char *project_nginx_rules(const struct project *p);
/* Is this project path (relative) a likely secret? */
bool project_is_secret(const char *relpath);

#endif
