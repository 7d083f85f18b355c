/* slate-bundle: installed Debian package versions, read from dpkg's status
 * file (never by running dpkg). */
#ifndef SLATE_BUNDLER_DPKG_H
#define SLATE_BUNDLER_DPKG_H

#include <jansson.h>

#include "slate/error.h"

#define SLATE_DPKG_STATUS "/var/lib/dpkg/status"

/* An object package -> version of every installed package. */
json_t *dpkg_installed(const char *status_path, slate_error_t *err);
/* "1:8.2.36-1~deb12u1" -> "8.2.36": epoch and Debian revision removed. */
char *dpkg_upstream_version(const char *version);

#endif
