/* slate: strict JSON helpers over jansson (typed getters that name the key
 * on failure, known-key checks, canonical output). */
#ifndef SLATE_JSON_H
#define SLATE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "slate/error.h"
#include "slate/util.h"

/* Canonical form: sorted keys, no insignificant white space. */
char *slate_json_canonical(const json_t *j, size_t *len, slate_error_t *err);
/* Refuse any key of obj not in the NULL-terminated list. `what` names obj. */
int slate_json_known_keys(const json_t *obj, const char *const *keys, const char *what, slate_error_t *err);
/* Typed getters: required unless `optional`; refuse wrong types naming what.key. */
int slate_json_get_string(const json_t *obj, const char *key, bool optional, const char **out, const char *what,
			  slate_error_t *err);
int slate_json_get_int(const json_t *obj, const char *key, bool optional, int64_t *out, const char *what,
		       slate_error_t *err);
/* An array of strings, copied into sv. */
int slate_json_get_strv(const json_t *obj, const char *key, bool optional, struct slate_strv *sv, const char *what,
			slate_error_t *err);
json_t *slate_json_strv(const struct slate_strv *sv);
json_t *slate_json_load_file(const char *path, size_t max, slate_error_t *err);

#endif
