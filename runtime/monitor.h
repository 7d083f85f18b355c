/* slate: the per-app monitor (like conmon): one small process per running
 * app that owns its instance(s), restarts a dead instance with exponential
 * backoff, writes the logs, owns the published ports and the granted
 * services, switches releases with zero downtime, and serves the CLI on
 * RUN/<app>/monitor.sock. Started detached by `slate deploy` / `start`. */
#ifndef SLATE_RUNTIME_MONITOR_H
#define SLATE_RUNTIME_MONITOR_H

#include "commands.h"

#define MONITOR_DRAIN_SECONDS 30
#define MONITOR_BACKOFF_MAX 60.0
#define MONITOR_HEALTH_TIMEOUT 30
#define LOG_MAX_BYTES (10ull << 20)
#define LOG_KEEP 3

/* Start the monitor of app in the background (double fork, new session,
 * stdio to /dev/null, slate-monitor from slate's own directory) and wait
 * until its socket answers. No-op when one is alive. */
int monitor_spawn(const struct slate_ctx *ctx, const char *app, slate_error_t *err);
/* Stop the app's monitor, if alive, and wait until it is gone (killed
 * after 10 s). */
int monitor_stop(const struct slate_ctx *ctx, const char *app, slate_error_t *err);
/* Is the app's monitor alive (its lock held)? */
bool monitor_alive(const struct slate_ctx *ctx, const char *app);
/* Check a -p ([HOSTIP:]HOSTPORT:PORT) or --connect ([IP:]PORT=HOST:HOSTPORT) spec. */
int monitor_check_spec(const char *s, slate_error_t *err);
/* Refused unless every port in options' "ports" is a `proxy_protocol`
 * port of image (see monitor.c). */
int monitor_check_published(const json_t *image, const json_t *options, slate_error_t *err);
/* The host port of a -p spec (0 if it is not one). */
int monitor_spec_host_port(const char *s);
/* The monitor's main (slate-monitor, runtime/monitor_main.c). */
int monitor_main(struct slate_ctx *ctx, const char *app);

#endif
