/* slate: strict JSON helpers (see include/slate/json.h). */
#include <string.h>

#include "slate/json.h"

char *slate_json_canonical(const json_t *j, size_t *len, slate_error_t *err)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	if (s == NULL) {
		slate_error_fail(err, "cannot encode JSON");
		return NULL;
	}
	if (len)
		*len = strlen(s);
	return s;
}

int slate_json_known_keys(const json_t *obj, const char *const *keys, const char *what, slate_error_t *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return slate_error_refuse(err, "%s: not a JSON object", what);
	json_object_foreach ((json_t *)obj, key, v) {
		bool known = false;
		(void)v;
		for (size_t i = 0; keys[i]; i++)
			if (strcmp(keys[i], key) == 0)
				known = true;
		if (!known)
			return slate_error_refuse(err, "%s: unknown key `%s`", what, key);
	}
	return 0;
}

int slate_json_get_string(const json_t *obj, const char *key, bool optional, const char **out, const char *what,
			  slate_error_t *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		if (optional)
			return 0;
		return slate_error_refuse(err, "%s: missing `%s`", what, key);
	}
	if (!json_is_string(v))
		return slate_error_refuse(err, "%s: `%s` must be a string", what, key);
	*out = json_string_value(v);
	return 0;
}

int slate_json_get_int(const json_t *obj, const char *key, bool optional, int64_t *out, const char *what,
		       slate_error_t *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		if (optional)
			return 0;
		return slate_error_refuse(err, "%s: missing `%s`", what, key);
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return slate_error_refuse(err, "%s: `%s` must be a non-negative integer", what, key);
	*out = json_integer_value(v);
	return 0;
}

int slate_json_get_strv(const json_t *obj, const char *key, bool optional, struct slate_strv *sv, const char *what,
			slate_error_t *err)
{
	json_t *v = json_object_get(obj, key), *item;
	size_t i;

	if (v == NULL) {
		if (optional)
			return 0;
		return slate_error_refuse(err, "%s: missing `%s`", what, key);
	}
	if (!json_is_array(v))
		return slate_error_refuse(err, "%s: `%s` must be a list of strings", what, key);
	json_array_foreach (v, i, item) {
		if (!json_is_string(item))
			return slate_error_refuse(err, "%s: `%s` must be a list of strings", what, key);
		slate_strv_push(sv, json_string_value(item));
	}
	return 0;
}

json_t *slate_json_strv(const struct slate_strv *sv)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

json_t *slate_json_load_file(const char *path, size_t max, slate_error_t *err)
{
	size_t len = 0;
	cleanup_free char *buf = slate_read_file(path, max, &len, err);
	json_error_t jerr;
	json_t *j;

	if (buf == NULL)
		return NULL;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		slate_error_refuse(err, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
	return j;
}
