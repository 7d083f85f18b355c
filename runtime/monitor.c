/* slate: the per-app monitor (see monitor.h).
 *
 * One thread, one poll loop. A "generation" is one instance of the app:
 * the current one serves; during a deploy a next one starts and is health
 * checked while the current keeps serving; after the switch the old one
 * drains (open connections finish, new ones go to the new generation) and
 * is stopped. The monitor never parses anything from inside an instance
 * except an HTTP status line of its health check. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "cgroup.h"
#include "control.h"
#include "env.h"
#include "init.h"
#include "instance.h"
#include "logfile.h"
#include "monitor.h"
#include "relay.h"
#include "slate/json.h"
#include "slate/path.h"
#include "tamper.h"

#define MAX_GENS 4
#define MAX_PORTS 16
#define MAX_POLL 128
/* Attack review items 11-13: what the app can make its monitor spend. */
/* fds the relay leaves to the control socket, logs, generations, and the
 * tamper alarm's directory fds (one per watch, and a walk's depth). */
#define MONITOR_FD_RESERVE (256 + TAMPER_MAX_WATCHES + 2 * TAMPER_DEPTH)
#define MONITOR_MEMORY (256ull << 20) /* the monitor's own cgroup */
#define MONITOR_ACCEPT_PAUSE 0.25 /* s without accepting after EMFILE and kin */
#define MONITOR_LOG_PAUSE 0.05 /* s without reading the instance's output when over the log rate */
/* How long a monitor with nothing to serve waits for its first deploy. */
#define MONITOR_IDLE_GRACE 30.0

struct port {
	char *host_ip;
	int host_port, port;
	int fd; /* host listener, -1 when off */
	bool off;
};

struct connect {
	char *ip; /* inside the instance */
	int port;
	char *host; /* on the host */
	int host_port;
};

struct gen {
	unsigned id;
	json_t *options; /* the app options it was started with */
	json_int_t release;
	struct slate_stored bundle;
	struct instance_opts opts;
	struct slate_strv env;
	struct instance *in;
	int out, err; /* read ends of its stdout, stderr */
	int listen[MAX_PORTS]; /* granted services: listeners inside it */
	double started, drain_until;
	bool exited, draining, stopping;
	bool heal; /* started by the tamper alarm: the old one stops at the switch */
	int status;
};

struct health {
	struct gen *g;
	int fd, state; /* 0 idle, 1 connecting, 2 reading */
	double deadline, next_try;
	char buf[64];
	size_t used;
	int client; /* the CLI waiting for the deploy */
};

struct monitor {
	struct slate_ctx *ctx;
	const char *app;
	struct app_paths p;
	json_t *options;
	struct gen *gens[MAX_GENS];
	struct gen *current;
	struct health health;
	struct port ports[MAX_PORTS];
	size_t nports;
	struct port next_ports[MAX_PORTS]; /* bound for a deploy, adopted at its switch */
	size_t next_nports;
	bool next_ready;
	double idle_until; /* with nothing to serve, stop at this time */
	struct connect connects[MAX_PORTS];
	size_t nconnects;
	bool connects_off;
	int ctl, sfd, host_netns;
	struct relay *relay;
	struct logfile *log;
	struct tamper *tamper;
	unsigned next_id, restarts;
	double backoff, restart_at;
	json_int_t restart_release;
	char *restart_bundle;
	bool stopping;
	int stop_client;
	struct relay_limits limits;
	double accept_pause_until, log_pause_until;
	unsigned long long accept_pauses;
	struct logfile_rate log_rate;
	struct slate_cgroup cg; /* the monitor's own */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note(struct monitor *m, const char *fmt, const char *arg)
{
	if (m->log)
		logfile_note(m->log, fmt, arg);
}

/* Specs come from the operator's flags and from app.json: parsed whole,
 * strictly (sscanf took "8080:80junk", "+80" and overflowed on long
 * numbers). A port is 1 to 5 decimal digits and at least min; an address
 * is dotted-quad IPv4 as inet_pton reads it. */
static bool spec_port(const char *s, size_t len, int min, int *out)
{
	int v = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return v >= min && v <= 65535;
}

static bool spec_ipv4(const char *s, size_t len, char out[INET_ADDRSTRLEN])
{
	struct in_addr addr;

	if (len == 0 || len >= INET_ADDRSTRLEN)
		return false;
	memcpy(out, s, len);
	out[len] = '\0';
	return inet_pton(AF_INET, out, &addr) == 1;
}

/* "[IP:]PORT" of length len: the address (default 127.0.0.1) and port. */
static bool spec_endpoint(const char *s, size_t len, int min, char ip[INET_ADDRSTRLEN], int *port)
{
	const char *colon = memchr(s, ':', len);

	if (colon == NULL) {
		strcpy(ip, "127.0.0.1");
		return spec_port(s, len, min, port);
	}
	return spec_ipv4(s, (size_t)(colon - s), ip) && spec_port(colon + 1, len - (size_t)(colon - s) - 1, min, port);
}

/* "[IP:]HOSTPORT:PORT"; host port 0: the kernel chooses one, and ps and
 * status show which. */
static int parse_port(const char *s, struct port *p, slate_error_t *err)
{
	char ip[INET_ADDRSTRLEN];
	const char *last = s ? strrchr(s, ':') : NULL;
	int a = 0, b = 0;

	if (last == NULL || !spec_endpoint(s, (size_t)(last - s), 0, ip, &a) ||
	    !spec_port(last + 1, strlen(last + 1), 1, &b))
		return slate_error_usage(
			err,
			"port `%s` is not [HOSTIP:]HOSTPORT:PORT (an IPv4 address, ports 1-65535, 0 for any host port)",
			s ? s : "");
	p->host_ip = xstrdup(ip);
	p->host_port = a;
	p->port = b;
	p->fd = -1;
	return 0;
}

/* "[IP:]PORT=HOST:HOSTPORT" */
static int parse_connect(const char *s, struct connect *c, slate_error_t *err)
{
	char ip[INET_ADDRSTRLEN], host[INET_ADDRSTRLEN];
	const char *eq = s ? strchr(s, '=') : NULL, *colon = eq ? strchr(eq + 1, ':') : NULL;
	int a = 0, b = 0;

	if (colon == NULL || !spec_endpoint(s, (size_t)(eq - s), 1, ip, &a) ||
	    !spec_ipv4(eq + 1, (size_t)(colon - eq - 1), host) || !spec_port(colon + 1, strlen(colon + 1), 1, &b))
		return slate_error_usage(
			err, "connect `%s` is not [IP:]PORT=HOST:HOSTPORT (IPv4 addresses, ports 1-65535)", s ? s : "");
	c->ip = xstrdup(ip);
	c->port = a;
	c->host = xstrdup(host);
	c->host_port = b;
	return 0;
}

int monitor_spec_host_port(const char *s)
{
	struct port p = { 0 };
	slate_error_t ignore = { 0 };
	int port = parse_port(s, &p, &ignore) == 0 ? p.host_port : 0;

	free(p.host_ip);
	return port;
}

int monitor_check_spec(const char *s, slate_error_t *err)
{
	struct port p = { 0 };
	struct connect c = { 0 };
	int r = strchr(s, '=') ? parse_connect(s, &c, err) : parse_port(s, &p, err);

	free(p.host_ip);
	free(c.ip);
	free(c.host);
	return r;
}

/* The ports options publish, parsed into ports[*n] (none opened). */
static int parse_ports(json_t *options, struct port *ports, size_t *n, slate_error_t *err)
{
	json_t *off = json_object_get(options, "ports_off"), *v;
	size_t i;

	json_array_foreach (json_object_get(options, "ports"), i, v) {
		if (*n == MAX_PORTS || parse_port(json_string_value(v), &ports[*n], err) < 0)
			return *n == MAX_PORTS ? slate_error_usage(err, "too many ports") : -1;
		for (size_t k = 0; k < json_array_size(off); k++)
			if (json_integer_value(json_array_get(off, k)) == ports[*n].host_port)
				ports[*n].off = true;
		(*n)++;
	}
	return 0;
}

static int load_connects(struct monitor *m, slate_error_t *err)
{
	json_t *conns = json_object_get(m->options, "connects"), *v;
	size_t i;

	json_array_foreach (conns, i, v) {
		if (m->nconnects == MAX_PORTS ||
		    parse_connect(json_string_value(v), &m->connects[m->nconnects], err) < 0)
			return m->nconnects == MAX_PORTS ? slate_error_usage(err, "too many connects") : -1;
		m->nconnects++;
	}
	m->connects_off = json_is_true(json_object_get(m->options, "connects_off"));
	return 0;
}

static int load_network(struct monitor *m, slate_error_t *err)
{
	if (parse_ports(m->options, m->ports, &m->nports, err) < 0)
		return -1;
	return load_connects(m, err);
}

static int open_ports(struct monitor *m, slate_error_t *err)
{
	for (size_t i = 0; i < m->nports; i++) {
		struct port *p = &m->ports[i];
		if (p->off || p->fd >= 0)
			continue;
		p->fd = relay_listen_host(p->host_ip, p->host_port, err);
		if (p->fd < 0)
			return slate_error_wrap(err, "publish %s:%d", p->host_ip, p->host_port);
	}
	return 0;
}

static void close_ports(struct monitor *m)
{
	for (size_t i = 0; i < m->nports; i++) {
		if (m->ports[i].fd >= 0)
			close(m->ports[i].fd);
		m->ports[i].fd = -1;
	}
}

static void free_ports(struct port *ports, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		if (ports[i].fd >= 0)
			close(ports[i].fd);
		free(ports[i].host_ip);
	}
	*n = 0;
}

/* A listener for p: the one open for the same address now, shared (it
 * cannot be bound twice), or a new one. */
static int port_listener(struct monitor *m, const struct port *p, slate_error_t *err)
{
	for (size_t i = 0; i < m->nports; i++) {
		const struct port *q = &m->ports[i];
		if (q->fd >= 0 && q->host_port == p->host_port && strcmp(q->host_ip, p->host_ip) == 0) {
			int fd = fcntl(q->fd, F_DUPFD_CLOEXEC, 0);
			return fd >= 0 ? fd
				       : slate_error_sys(err, errno, "share the listener of %s:%d", p->host_ip,
							 p->host_port);
		}
	}
	return relay_listen_host(p->host_ip, p->host_port, err);
}

static bool same_key(json_t *a, json_t *b, const char *key)
{
	json_t *x = json_object_get(a, key), *y = json_object_get(b, key);

	return (x == NULL && y == NULL) || (x && y && json_equal(x, y));
}

static void discard_next_ports(struct monitor *m)
{
	free_ports(m->next_ports, &m->next_nports);
	m->next_ready = false;
}

/* Bind every port a deploy publishes before its instance starts, so that a
 * port that cannot be bound (in use, not an address of this host) fails
 * the deploy, named, while the current release keeps serving on its own
 * ports; a deploy that succeeded always serves what `ps` shows. The
 * listeners are adopted at the switch (apply_options). */
static int prepare_ports(struct monitor *m, json_t *options, slate_error_t *err)
{
	discard_next_ports(m);
	if (same_key(m->options, options, "ports") && same_key(m->options, options, "ports_off"))
		return 0;
	if (parse_ports(options, m->next_ports, &m->next_nports, err) < 0) {
		discard_next_ports(m);
		return -1;
	}
	for (size_t i = 0; i < m->next_nports; i++) {
		struct port *p = &m->next_ports[i];
		slate_error_t e = { 0 };
		if (p->off)
			continue;
		p->fd = port_listener(m, p, &e);
		if (p->fd < 0) {
			slate_error_refuse(err, "cannot publish %s:%d: %s%s", p->host_ip, p->host_port,
					   e.errnum ? strerror(e.errnum) : e.msg,
					   m->current ? " (the running release keeps serving)" : "");
			discard_next_ports(m);
			return -1;
		}
	}
	m->next_ready = true;
	return 0;
}

/* ---- generations ---- */

static int gen_env(struct monitor *m, struct gen *g, slate_error_t *err)
{
	const char *file = json_string_value(json_object_get(g->options, "env_file"));
	json_t *envs = json_object_get(g->options, "env"), *v;
	size_t i;

	if (file && env_add_file(&g->env, file, err) < 0)
		return -1;
	json_array_foreach (envs, i, v)
		if (env_add(&g->env, json_string_value(v), err) < 0)
			return -1;
	env_defaults(&g->env, m->app);
	return 0;
}

static void gen_opts(struct monitor *m, struct gen *g)
{
	json_t *o = g->options;
	uint64_t mem = (uint64_t)json_integer_value(json_object_get(o, "memory"));
	uint64_t pids = (uint64_t)json_integer_value(json_object_get(o, "pids"));
	uint64_t tmpfs = (uint64_t)json_integer_value(json_object_get(o, "tmpfs_size"));

	g->opts = (struct instance_opts){
		.root = m->ctx->root,
		.name = m->app,
		.bundle = &g->bundle,
		.env = g->env.v,
		.limits = { .memory = mem ? mem : SLATE_DEFAULT_MEMORY,
			    .pids = pids ? pids : SLATE_DEFAULT_PIDS,
			    .cpu_millis = (uint64_t)json_integer_value(json_object_get(o, "cpu_millis")) },
		.tmpfs_size = tmpfs ? tmpfs : SLATE_DEFAULT_TMPFS_SIZE,
		.tmpfs_inodes = SLATE_DEFAULT_TMPFS_INODES,
	};
}

static void gen_free(struct gen *g)
{
	for (int i = 0; i < MAX_PORTS; i++)
		if (g->listen[i] >= 0)
			close(g->listen[i]);
	if (g->out >= 0)
		close(g->out);
	if (g->err >= 0)
		close(g->err);
	slate_stored_free(&g->bundle);
	slate_strv_free(&g->env);
	json_decref(g->options);
	free(g);
}

static void open_connects(struct monitor *m, struct gen *g)
{
	slate_error_t e = { 0 };

	for (size_t i = 0; i < m->nconnects && !m->connects_off; i++) {
		if (g->listen[i] >= 0)
			continue;
		g->listen[i] = relay_listen_in(instance_netns_fd(g->in), m->host_netns, m->connects[i].ip,
					       m->connects[i].port, &e);
		if (g->listen[i] < 0)
			note(m, "connect: %s", e.msg);
	}
}

static void close_connects(struct gen *g)
{
	for (int i = 0; i < MAX_PORTS; i++) {
		if (g->listen[i] >= 0)
			close(g->listen[i]);
		g->listen[i] = -1;
	}
}

/* The instance port behind a published one: only a port that the image
 * declares under "proxy_protocol" is relayed, and always with a PROXY
 * line, so that no client can send its own (attack review item 14). -1
 * when the image does not declare it. */
static int proxy_target(const json_t *image, int port)
{
	char key[16];
	json_t *v;

	snprintf(key, sizeof(key), "%d", port);
	v = json_object_get(json_object_get(image, "proxy_protocol"), key);
	return json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 65535
		       ? (int)json_integer_value(v)
		       : -1;
}

/* Every port published must be one the image declares under
 * "proxy_protocol": the relay then always sends the PROXY line itself.
 * Publishing any other port is refused (attack review item 14): a plain
 * port cannot tell the client's address, and a proxy-protocol port
 * reached directly would believe a PROXY line from the client. The CLI
 * checks before a deploy, the monitor again before each start. */
int monitor_check_published(const json_t *image, const json_t *options, slate_error_t *err)
{
	json_t *v;
	size_t i;

	json_array_foreach (json_object_get(options, "ports"), i, v) {
		struct port p = { 0 };
		int r = parse_port(json_string_value(v) ? json_string_value(v) : "", &p, err);
		free(p.host_ip);
		if (r < 0)
			return -1;
		if (proxy_target(image, p.port) < 0)
			return slate_error_refuse(
				err,
				"port %d is not a proxy-protocol port of the image; publish one of its "
				"`proxy_protocol` ports (e.g. 80)",
				p.port);
	}
	return 0;
}

static struct gen *gen_start(struct monitor *m, const char *bundle_id, json_int_t release, json_t *options,
			     slate_error_t *err)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, null = -1;
	int stdio[3];

	g->out = g->err = -1;
	for (int i = 0; i < MAX_PORTS; i++)
		g->listen[i] = -1;
	g->release = release;
	g->options = json_incref(options);
	g->id = ++m->next_id;
	if (slate_store_load(m->ctx->root, bundle_id, &g->bundle, err) < 0 ||
	    monitor_check_published(g->bundle.m.image, g->options, err) < 0 || gen_env(m, g, err) < 0)
		goto fail;
	gen_opts(m, g);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		slate_error_sys(err, errno, "pipe");
		goto fail;
	}
	stdio[0] = null;
	stdio[1] = out[1];
	stdio[2] = errp[1];
	g->in = instance_start(&g->opts, stdio, err);
	g->out = out[0];
	g->err = errp[0];
	out[0] = errp[0] = -1;
	if (g->in == NULL)
		goto fail;
	g->started = now();
	if (tamper_watch(m->tamper, g->id, instance_scratch_fd(g->in), g->release, g->bundle.id, err) < 0) {
		note(m, "tamper: %s", err->msg);
		memset(err, 0, sizeof(*err));
	}
	open_connects(m, g);
	close(null);
	close(out[1]);
	close(errp[1]);
	return g;
fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (null >= 0)
		close(null);
	gen_free(g);
	return NULL;
}

static void gen_add(struct monitor *m, struct gen *g)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (m->gens[i] == NULL) {
			m->gens[i] = g;
			return;
		}
}

static void gen_stop(struct gen *g)
{
	if (g->in && !g->exited && !g->stopping) {
		kill(instance_pid(g->in), SIGTERM);
		g->stopping = true;
	}
}

/* ---- state for `slate ps` ---- */

/* What each published port really is: the address its listener is bound
 * to (with host port 0, the port the kernel chose), else "(off)" or "(not
 * listening)": never a port that nothing listens on. */
static json_t *ports_json(struct monitor *m)
{
	json_t *a = json_array();

	for (size_t i = 0; i < m->nports; i++) {
		const struct port *p = &m->ports[i];
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		char ip[INET_ADDRSTRLEN];

		if (p->fd >= 0 && getsockname(p->fd, (struct sockaddr *)&sa, &len) == 0 && sa.sin_family == AF_INET &&
		    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)))
			json_array_append_new(a, json_sprintf("%s:%u->%d", ip, (unsigned)ntohs(sa.sin_port), p->port));
		else
			json_array_append_new(a, json_sprintf("%s:%d->%d%s", p->host_ip, p->host_port, p->port,
							      p->off ? " (off)" : " (not listening)"));
	}
	return a;
}

static void write_running(struct monitor *m)
{
	slate_error_t ignore = { 0 };
	json_t *o = json_object();
	struct gen *g = m->current;

	json_object_set_new(o, "monitor_pid", json_integer(getpid()));
	json_object_set_new(o, "state",
			    json_string(m->stopping         ? "stopping"
					: g                 ? "running"
					: m->restart_at > 0 ? "restarting"
							    : "idle"));
	json_object_set_new(o, "restarts", json_integer(m->restarts));
	if (g) {
		json_object_set_new(o, "release", json_integer(g->release));
		json_object_set_new(o, "bundle", json_string(g->bundle.id));
		json_object_set_new(o, "instance_pid", json_integer(instance_pid(g->in)));
		json_object_set_new(o, "started",
				    json_integer((json_int_t)time(NULL) - (json_int_t)(now() - g->started)));
	}
	json_object_set_new(o, "ports", ports_json(m));
	json_object_set_new(o, "connects_off", json_boolean(m->connects_off));
	app_save(m->p.running_json, o, &ignore);
	json_decref(o);
}

/* ---- health check of a starting generation: GET <path> on its port,
 * a status below 500 within the timeout ---- */

static void reply(struct monitor *m, int *client, json_t *j)
{
	slate_error_t ignore = { 0 };

	(void)m;
	if (*client >= 0) {
		control_send(*client, j, -1, &ignore);
		close(*client);
	}
	*client = -1;
	json_decref(j);
}

static int health_port(const struct gen *g)
{
	json_int_t port = json_integer_value(json_object_get(json_object_get(g->bundle.m.image, "health"), "port"));

	return port > 0 ? (int)port : 80;
}

static const char *health_path(const struct gen *g)
{
	const char *p = json_string_value(json_object_get(json_object_get(g->bundle.m.image, "health"), "path"));

	return p ? p : "/";
}

static void health_reset(struct health *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->state = 0;
	h->used = 0;
}

static void switch_to(struct monitor *m, struct gen *g);

static void deploy_fail(struct monitor *m, const char *why)
{
	struct health *h = &m->health;
	slate_error_t e = { 0 };
	json_t *r;

	slate_error_refuse(&e, "release %lld not healthy: %s (the running release keeps serving)",
			   (long long)h->g->release, why);
	note(m, "deploy: %s", e.msg);
	r = control_error(&e);
	reply(m, &h->client, r);
	gen_stop(h->g);
	h->g->draining = true;
	h->g = NULL;
	health_reset(h);
	discard_next_ports(m);
	m->idle_until = now(); /* a first deploy: nothing left to serve */
}

static void health_try(struct monitor *m)
{
	struct health *h = &m->health;
	slate_error_t e = { 0 };

	h->next_try = now() + 0.02;
	h->fd = relay_connect_in(instance_netns_fd(h->g->in), m->host_netns, "127.0.0.1", health_port(h->g), &e);
	h->state = h->fd >= 0 ? 1 : 0;
}

/* A status line arrived (or the connection failed: try again later). */
static void health_io(struct monitor *m, short revents)
{
	struct health *h = &m->health;
	int status = 0;

	if (h->state == 1 && (revents & POLLOUT)) {
		cleanup_free char *req = xasprintf(
			"GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: slate-health\r\n\r\n", health_path(h->g));
		if (send(h->fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
			h->state = 2;
			return;
		}
	} else if (h->state == 2 && (revents & POLLIN)) {
		ssize_t n = recv(h->fd, h->buf + h->used, sizeof(h->buf) - 1 - h->used, 0);
		if (n > 0) {
			h->used += (size_t)n;
			h->buf[h->used] = '\0';
			if (!strchr(h->buf, '\n') && h->used < sizeof(h->buf) - 1)
				return;
			if (sscanf(h->buf, "HTTP/%*d.%*d %d", &status) == 1 && status > 0 && status < 500) {
				struct gen *g = h->g;
				health_reset(h);
				h->g = NULL;
				switch_to(m, g);
				return;
			}
		}
	}
	health_reset(h);
}

static void health_tick(struct monitor *m)
{
	struct health *h = &m->health;

	if (h->g == NULL)
		return;
	if (h->g->exited)
		return deploy_fail(m, "its instance exited");
	if (now() > h->deadline)
		return deploy_fail(m, "no answer below 500 to the health check in time");
	if (h->state == 0 && now() >= h->next_try)
		health_try(m);
}

/* New connections go to g from now on; the old generation drains. */
static void free_network(struct monitor *m)
{
	close_ports(m);
	for (size_t i = 0; i < m->nports; i++)
		free(m->ports[i].host_ip);
	for (size_t i = 0; i < m->nconnects; i++) {
		free(m->connects[i].ip);
		free(m->connects[i].host);
	}
	m->nports = m->nconnects = 0;
}

/* A deploy's options become the app's at the switch: published ports
 * (bound by prepare_ports) and granted services follow them (listeners
 * kept when nothing changed). */
static void apply_options(struct monitor *m, json_t *options)
{
	bool conns_same;
	slate_error_t e = { 0 };

	if (options == NULL || options == m->options)
		return;
	conns_same = same_key(m->options, options, "connects") && same_key(m->options, options, "connects_off");
	json_decref(m->options);
	m->options = json_incref(options);
	if (m->next_ready) {
		free_ports(m->ports, &m->nports);
		memcpy(m->ports, m->next_ports, sizeof(m->ports));
		m->nports = m->next_nports;
		m->next_nports = 0;
		m->next_ready = false;
	}
	tamper_configure(m->tamper, m->options);
	if (conns_same)
		return;
	for (size_t i = 0; i < m->nconnects; i++) {
		free(m->connects[i].ip);
		free(m->connects[i].host);
	}
	m->nconnects = 0;
	if (load_connects(m, &e) < 0)
		note(m, "network: %s", e.msg);
}

static void switch_to(struct monitor *m, struct gen *g)
{
	struct gen *old = m->current;
	json_t *r = control_ok();
	cleanup_free char *rel = xasprintf("%lld", (long long)g->release);

	json_int_t drain = json_integer_value(json_object_get(g->options, "drain_timeout"));

	if (old) {
		old->draining = true;
		old->drain_until = g->heal ? now() : now() + (double)(drain > 0 ? drain : MONITOR_DRAIN_SECONDS);
		/* No graceful-stop signal here: nginx would close idle keep-alive
		 * connections under clients that are sending on them (a lost
		 * request); they finish on the old instance until they close, or
		 * until the drain deadline. */
		close_connects(old);
	}
	m->current = g;
	m->backoff = 1;
	apply_options(m, g->options);
	close_connects(g);
	open_connects(m, g);
	note(m, "serving release %s", rel);
	write_running(m);
	json_object_set_new(r, "release", json_integer(g->release));
	reply(m, &m->health.client, r);
}

/* ---- control requests ---- */

/* What the app costs its monitor, and the bounds on it (attack review
 * items 11-13): connections refused and expired, the limits, the
 * monitor's cgroup and its memory, log lines dropped. */
static json_t *monitor_json(struct monitor *m)
{
	struct relay_stats rs;
	struct slate_cg_memory mem = { 0 };
	slate_error_t ignore = { 0 };
	json_t *o;

	relay_stats(m->relay, &rs);
	o = json_pack("{s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I}", "connections_refused",
		      (json_int_t)rs.refused, "connections_expired", (json_int_t)rs.expired, "accept_pauses",
		      (json_int_t)m->accept_pauses, "limits", "connections", (json_int_t)m->limits.total, "per_port",
		      (json_int_t)m->limits.per_group, "per_address", (json_int_t)m->limits.per_addr, "idle_timeout_ms",
		      (json_int_t)m->limits.idle_ms, "half_close_timeout_ms", (json_int_t)m->limits.half_close_ms,
		      "log_dropped_lines", (json_int_t)m->log_rate.dropped_lines, "log_dropped_bytes",
		      (json_int_t)m->log_rate.dropped_bytes);
	if (m->cg.version && slate_cgroup_memory(&m->cg, &mem, &ignore) == 0)
		json_object_set_new(o, "cgroup",
				    json_pack("{s:s, s:i, s:I, s:I, s:I}", "name", m->cg.name, "version", m->cg.version,
					      "memory_max", (json_int_t)mem.max, "memory_current",
					      (json_int_t)mem.current, "socket_memory", (json_int_t)mem.tcp));
	return o;
}

static json_t *status_json(struct monitor *m)
{
	json_t *r = control_ok();

	json_object_set_new(r, "pid", json_integer(getpid()));
	json_object_set_new(r, "restarts", json_integer(m->restarts));
	if (m->current) {
		json_object_set_new(r, "release", json_integer(m->current->release));
		json_object_set_new(r, "bundle", json_string(m->current->bundle.id));
		json_object_set_new(r, "instance_pid", json_integer(instance_pid(m->current->in)));
		json_object_set_new(r, "uptime", json_integer((json_int_t)(now() - m->current->started)));
	}
	json_object_set_new(r, "connections", json_integer((json_int_t)relay_open_count(m->relay, -1)));
	json_object_set_new(r, "monitor", monitor_json(m));
	json_object_set_new(r, "ports", ports_json(m));
	return r;
}

static void start_deploy(struct monitor *m, int client, json_t *req)
{
	const char *bundle = json_string_value(json_object_get(req, "bundle"));
	json_int_t release = json_integer_value(json_object_get(req, "release"));
	json_int_t timeout = json_integer_value(json_object_get(req, "timeout"));
	slate_error_t e = { 0 };
	struct gen *g;

	if (m->health.g != NULL || bundle == NULL) {
		slate_error_fail(&e, bundle ? "another deploy is in progress" : "deploy without a bundle");
		return reply(m, &client, control_error(&e));
	}
	if (prepare_ports(m, json_object_get(req, "options"), &e) < 0) {
		note(m, "deploy: %s", e.msg);
		m->idle_until = now();
		return reply(m, &client, control_error(&e));
	}
	g = gen_start(m, bundle, release, json_object_get(req, "options"), &e);
	if (g == NULL) {
		discard_next_ports(m);
		m->idle_until = now();
		return reply(m, &client, control_error(&e));
	}
	gen_add(m, g);
	m->health.g = g;
	m->health.client = client;
	m->health.deadline = now() + (timeout > 0 ? (double)timeout : MONITOR_HEALTH_TIMEOUT);
	m->health.next_try = now() + 0.02;
	m->restart_at = 0;
}

/* The tamper alarm's --heal: a fresh generation of the serving release,
 * health checked and switched to as a redeploy is, without a CLI waiting. */
static int heal(void *arg, unsigned id, slate_error_t *err)
{
	struct monitor *m = arg;
	char rel[32];
	int free_slot = -1;
	struct gen *g;

	if (m->stopping || m->current == NULL || m->current->id != id)
		return slate_error_refuse(err, "not the serving instance");
	if (m->health.g != NULL)
		return slate_error_refuse(err, "a deploy is in progress");
	snprintf(rel, sizeof(rel), "%lld", (long long)m->current->release);
	for (int i = 0; i < MAX_GENS && free_slot < 0; i++)
		if (m->gens[i] == NULL)
			free_slot = i;
	if (free_slot < 0)
		return slate_error_refuse(err, "too many instances draining");
	g = gen_start(m, m->current->bundle.id, m->current->release, m->options, err);
	if (g == NULL)
		return -1;
	g->heal = true;
	gen_add(m, g);
	m->health.g = g;
	m->health.deadline = now() + MONITOR_HEALTH_TIMEOUT;
	m->health.next_try = now() + 0.005;
	note(m, "tamper: healing: a fresh instance of release %s", rel);
	return 0;
}

/* Hand an fd (the instance's tmpfs, or a pidfd of its init) to the CLI. */
static void send_fd(struct monitor *m, int client, int fd, bool close_after)
{
	slate_error_t e = { 0 };
	json_t *r = control_ok();

	if (fd < 0) {
		json_decref(r);
		slate_error_refuse(&e, "the app has no running instance");
		return reply(m, &client, control_error(&e));
	}
	json_object_set_new(r, "instance_pid", json_integer(instance_pid(m->current->in)));
	control_send(client, r, fd, &e);
	json_decref(r);
	close(client);
	if (close_after)
		close(fd);
}

static void set_port(struct monitor *m, int client, json_t *req)
{
	bool on = json_is_true(json_object_get(req, "on"));
	json_int_t which = json_integer_value(json_object_get(req, "port"));
	slate_error_t e = { 0 };

	for (size_t i = 0; i < m->nports; i++) {
		struct port *p = &m->ports[i];
		if (which && p->host_port != which)
			continue;
		p->off = !on;
		if (!on && p->fd >= 0) {
			close(p->fd);
			p->fd = -1;
		}
	}
	if (on && open_ports(m, &e) < 0)
		return reply(m, &client, control_error(&e));
	write_running(m);
	reply(m, &client, control_ok());
}

static void set_connect(struct monitor *m, int client, json_t *req)
{
	m->connects_off = !json_is_true(json_object_get(req, "on"));
	for (int i = 0; i < MAX_GENS; i++) {
		if (m->gens[i] == NULL)
			continue;
		if (m->connects_off)
			close_connects(m->gens[i]);
		else if (m->gens[i] == m->current)
			open_connects(m, m->gens[i]);
	}
	write_running(m);
	reply(m, &client, control_ok());
}

static void handle_request(struct monitor *m, int client, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	slate_error_t e = { 0 };

	if (cmd == NULL)
		cmd = "";
	if (strcmp(cmd, "status") == 0)
		return reply(m, &client, status_json(m));
	if (strcmp(cmd, "deploy") == 0)
		return start_deploy(m, client, req);
	if (strcmp(cmd, "port") == 0)
		return set_port(m, client, req);
	if (strcmp(cmd, "connect") == 0)
		return set_connect(m, client, req);
	if (strcmp(cmd, "scratch") == 0)
		return send_fd(m, client, m->current ? instance_scratch_fd(m->current->in) : -1, false);
	if (strcmp(cmd, "pidfd") == 0)
		return send_fd(m, client,
			       m->current ? (int)syscall(SYS_pidfd_open, instance_pid(m->current->in), 0) : -1, true);
	if (strcmp(cmd, "stop") == 0) {
		m->stopping = true;
		m->stop_client = client;
		for (int i = 0; i < MAX_GENS; i++)
			if (m->gens[i])
				gen_stop(m->gens[i]);
		close_ports(m);
		return;
	}
	slate_error_usage(&e, "unknown monitor command `%s`", cmd);
	reply(m, &client, control_error(&e));
}

/* ---- connections ---- */

/* EMFILE and kin: the listener stays readable, so accepting again at once
 * would spin at 100% CPU; new connections wait in the kernel's queue for
 * a moment while open ones finish or expire. */
static void accept_failed(struct monitor *m, int errnum)
{
	if (errnum != EMFILE && errnum != ENFILE && errnum != ENOBUFS && errnum != ENOMEM)
		return;
	if (m->accept_pause_until < now())
		m->accept_pauses++;
	m->accept_pause_until = now() + MONITOR_ACCEPT_PAUSE;
}

/* A client on a published port: to the current generation's port that the
 * image declares for it, after a PROXY line. Counted per port and per
 * client address (see relay_limits_for_nofile). */
static void accept_port(struct monitor *m, struct port *p)
{
	slate_error_t e = { 0 };
	int client = accept4(p->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up, target, len, group;
	char line[RELAY_PROXY_V1_MAX];

	if (client < 0)
		return accept_failed(m, errno);
	group = (int)(p - m->ports);
	target = m->current && !m->current->exited ? proxy_target(m->current->bundle.m.image, p->port) : -1;
	if (target < 0 || relay_admit(m->relay, client, group, 1, &e) < 0) {
		close(client);
		return;
	}
	len = relay_proxy_v1(client, line, sizeof(line), &e);
	if (len < 0) {
		close(client);
		return;
	}
	up = relay_connect_in(instance_netns_fd(m->current->in), m->host_netns, "127.0.0.1", target, &e);
	if (up < 0) {
		accept_failed(m, e.errnum);
		close(client);
		return;
	}
	if (relay_add_group(m->relay, client, up, line, (size_t)len, (int)m->current->id, group, 1, &e) < 0)
		accept_failed(m, e.errnum);
}

/* Something inside the instance connects to a granted service: counted
 * per service (the client is always the instance). */
static void accept_connect(struct monitor *m, struct gen *g, size_t i)
{
	slate_error_t e = { 0 };
	int client = accept4(g->listen[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up;
	int group = MAX_PORTS + (int)i;

	if (client < 0)
		return accept_failed(m, errno);
	if (relay_admit(m->relay, client, group, 0, &e) < 0) {
		close(client);
		return;
	}
	up = relay_connect_in(m->host_netns, m->host_netns, m->connects[i].host, m->connects[i].host_port, &e);
	if (up < 0) {
		accept_failed(m, e.errnum);
		close(client);
		return;
	}
	if (relay_add_group(m->relay, client, up, NULL, 0, (int)g->id, group, 0, &e) < 0)
		accept_failed(m, e.errnum);
}

/* Once a second: what the rate limit dropped in the window that ended. */
static void log_rate_tick(struct monitor *m)
{
	uint64_t bytes = 0, lines = logfile_rate_tick(&m->log_rate, now(), &bytes);

	if (lines > 0 && m->log)
		logfile_note(m->log,
			     "log: dropped %llu lines (%llu bytes) over the rate limit (%u lines, %u bytes a second)",
			     (unsigned long long)lines, (unsigned long long)bytes, LOGFILE_RATE_LINES,
			     LOGFILE_RATE_BYTES);
}

/* The instance's output into the log, within the rate limit. Over it, what
 * was read is dropped (counted) and the output is not read for a moment:
 * the instance's writes wait on the full pipe meanwhile, so a flood costs
 * the monitor a few reads a second, not as much CPU as the flood. */
static void pump_log(struct monitor *m, int *fd, const char *stream)
{
	char buf[16384];
	ssize_t n;
	slate_error_t ignore = { 0 };

	log_rate_tick(m);
	n = read(*fd, buf, sizeof(buf));
	if (n > 0) {
		if (!logfile_rate_take(&m->log_rate, buf, (size_t)n))
			m->log_pause_until = now() + MONITOR_LOG_PAUSE;
		else if (m->log)
			logfile_write(m->log, stream, buf, (size_t)n, &ignore);
		return;
	}
	if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

/* ---- instance exits ---- */

static void gen_remove(struct monitor *m, struct gen *g)
{
	slate_error_t ignore = { 0 };

	for (int i = 0; i < MAX_GENS; i++)
		if (m->gens[i] == g)
			m->gens[i] = NULL;
	relay_close_tag(m->relay, (int)g->id);
	tamper_unwatch(m->tamper, g->id);
	instance_finish(g->in, &ignore);
	g->in = NULL;
	gen_free(g);
}

static void on_exit_gen(struct monitor *m, struct gen *g)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d", init_exit_code(g->status));
	/* A deploy's (or a heal's) instance that dies under its health check
	 * fails that deploy now: the check must not outlive its generation. */
	if (g == m->health.g)
		deploy_fail(m, "its instance exited");
	if (g != m->current || m->stopping) {
		gen_remove(m, g);
		return;
	}
	/* The serving instance died: restart it, backing off. */
	note(m, "instance exited with status %s; restarting", buf);
	tamper_crash(m->tamper, g->id, instance_scratch_fd(g->in), g->release, g->bundle.id);
	m->restart_release = g->release;
	if (now() - g->started > MONITOR_BACKOFF_MAX)
		m->backoff = 1;
	m->restart_at = now() + m->backoff;
	m->backoff = m->backoff * 2 > MONITOR_BACKOFF_MAX ? MONITOR_BACKOFF_MAX : m->backoff * 2;
	m->restarts++;
	cleanup_free char *id = xstrdup(g->bundle.id);
	m->current = NULL;
	gen_remove(m, g);
	free(m->restart_bundle);
	m->restart_bundle = xstrdup(id);
	write_running(m);
}

static void reap(struct monitor *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (tamper_reaped(m->tamper, pid, status))
			continue;
		for (int i = 0; i < MAX_GENS; i++) {
			struct gen *g = m->gens[i];
			if (g && g->in && instance_pid(g->in) == pid) {
				g->exited = true;
				g->status = status;
				on_exit_gen(m, g);
			}
		}
	}
}

static void restart_tick(struct monitor *m)
{
	const char *id = m->restart_bundle;
	slate_error_t e = { 0 };
	struct gen *g;

	if (m->restart_at == 0 || now() < m->restart_at || m->stopping || id == NULL)
		return;
	m->restart_at = 0;
	g = gen_start(m, id, m->restart_release, m->options, &e);
	if (g == NULL) {
		note(m, "restart failed: %s", e.msg);
		m->restart_at = now() + m->backoff;
		m->backoff = m->backoff * 2 > MONITOR_BACKOFF_MAX ? MONITOR_BACKOFF_MAX : m->backoff * 2;
		return;
	}
	gen_add(m, g);
	m->current = g;
	write_running(m);
}

/* Old generations: stop once drained or at the drain deadline. */
static void drain_tick(struct monitor *m)
{
	for (int i = 0; i < MAX_GENS; i++) {
		struct gen *g = m->gens[i];
		if (g == NULL || !g->draining || g->stopping || g == m->current)
			continue;
		if (relay_open_count(m->relay, (int)g->id) == 0 || now() >= g->drain_until)
			gen_stop(g);
	}
}

/* A monitor with nothing to serve (no release switched to, none to
 * restart, no deploy under way) stops: a first deploy that failed, or
 * whose command was killed before or during it, leaves no process. */
static void idle_tick(struct monitor *m)
{
	if (m->stopping || m->current || m->restart_bundle || m->health.g || now() < m->idle_until)
		return;
	note(m, "monitor: %s", "nothing to serve: stopping");
	m->stopping = true;
	for (int i = 0; i < MAX_GENS; i++)
		if (m->gens[i])
			gen_stop(m->gens[i]);
	close_ports(m);
}

/* ---- the loop ---- */

enum pkind { P_SIG, P_CTL, P_PORT, P_CONN, P_RELAY, P_OUT, P_ERR, P_HEALTH, P_WAITER, P_TAMPER };

/* A poll set names what it polls by identity (a generation's id, never
 * reused; an index), not by pointer: a handler may free a generation, or
 * close an fd whose number the next accept takes, before the rest of the
 * round is handled. */
struct pset {
	struct pollfd fds[MAX_POLL];
	enum pkind kind[MAX_POLL];
	unsigned gen[MAX_POLL];
	size_t idx[MAX_POLL];
	int n;
};

static void padd(struct pset *s, int fd, short ev, enum pkind k, unsigned gen, size_t idx)
{
	if (fd < 0 || s->n == MAX_POLL)
		return;
	s->fds[s->n] = (struct pollfd){ fd, ev, 0 };
	s->kind[s->n] = k;
	s->gen[s->n] = gen;
	s->idx[s->n] = idx;
	s->n++;
}

static void build_pollset(struct monitor *m, struct pset *s)
{
	bool accepting = now() >= m->accept_pause_until, logging = now() >= m->log_pause_until;

	s->n = 0;
	padd(s, m->sfd, POLLIN, P_SIG, 0, 0);
	padd(s, m->ctl, POLLIN, P_CTL, 0, 0);
	padd(s, relay_epoll_fd(m->relay), POLLIN, P_RELAY, 0, 0);
	for (size_t i = 0; i < m->nports && accepting; i++)
		padd(s, m->ports[i].fd, POLLIN, P_PORT, 0, i);
	for (int k = 0; k < MAX_GENS; k++) {
		struct gen *g = m->gens[k];
		if (g == NULL)
			continue;
		if (logging) {
			padd(s, g->out, POLLIN, P_OUT, g->id, 0);
			padd(s, g->err, POLLIN, P_ERR, g->id, 0);
		}
		for (size_t i = 0; i < m->nconnects && accepting; i++)
			padd(s, g->listen[i], POLLIN, P_CONN, g->id, i);
	}
	if (m->health.fd >= 0)
		padd(s, m->health.fd, m->health.state == 1 ? POLLOUT : POLLIN, P_HEALTH, 0, 0);
	if (m->health.client >= 0)
		padd(s, m->health.client, POLLIN | POLLRDHUP, P_WAITER, 0, 0);
	for (size_t i = 0; i < TAMPER_NFDS; i++)
		padd(s, *tamper_fd(m->tamper, i), POLLIN, P_TAMPER, 0, i);
}

static void on_ctl(struct monitor *m)
{
	slate_error_t e = { 0 };
	int client = accept4(m->ctl, NULL, NULL, SOCK_CLOEXEC);
	json_t *req;

	if (client < 0)
		return;
	req = control_recv(client, 2000, NULL, &e);
	if (req == NULL) {
		close(client);
		return;
	}
	handle_request(m, client, req);
	json_decref(req);
}

static void on_signal(struct monitor *m)
{
	struct signalfd_siginfo si;

	while (read(m->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap(m);
		} else if (!m->stopping) {
			m->stopping = true;
			for (int i = 0; i < MAX_GENS; i++)
				if (m->gens[i])
					gen_stop(m->gens[i]);
			close_ports(m);
		}
	}
}

static struct gen *gen_by_id(struct monitor *m, unsigned id)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (m->gens[i] && m->gens[i]->id == id)
			return m->gens[i];
	return NULL;
}

/* The fd entry i polled, if it still holds it now (earlier handlers of
 * this round may have closed it, or freed its generation), and its
 * generation in *gp: the one place an entry's owner is looked up. */
static int *entry_fd(struct monitor *m, const struct pset *s, int i, struct gen **gp)
{
	struct gen *g = *gp = s->gen[i] ? gen_by_id(m, s->gen[i]) : NULL;
	size_t k = s->idx[i];
	int *fd = NULL;

	switch (s->kind[i]) {
	case P_SIG: fd = &m->sfd; break;
	case P_CTL: fd = &m->ctl; break;
	case P_RELAY: return NULL; /* not an fd of ours to check: the relay's own */
	case P_PORT: fd = k < m->nports ? &m->ports[k].fd : NULL; break;
	case P_CONN: fd = g && k < m->nconnects ? &g->listen[k] : NULL; break;
	case P_OUT: fd = g ? &g->out : NULL; break;
	case P_ERR: fd = g ? &g->err : NULL; break;
	case P_HEALTH: fd = &m->health.fd; break;
	case P_WAITER: fd = &m->health.client; break;
	case P_TAMPER: fd = tamper_fd(m->tamper, k); break;
	}
	return fd && *fd == s->fds[i].fd ? fd : NULL;
}

static void dispatch(struct monitor *m, struct pset *s)
{
	for (int i = 0; i < s->n; i++) {
		short re = s->fds[i].revents;
		struct gen *g;
		int *fd;

		if (re == 0)
			continue;
		if (s->kind[i] == P_RELAY) {
			relay_dispatch(m->relay, 0);
			continue;
		}
		fd = entry_fd(m, s, i, &g);
		if (fd == NULL)
			continue; /* gone since the poll: the next round sees what is there now */
		switch (s->kind[i]) {
		case P_SIG: on_signal(m); break;
		case P_CTL: on_ctl(m); break;
		case P_PORT: accept_port(m, &m->ports[s->idx[i]]); break;
		case P_CONN: accept_connect(m, g, s->idx[i]); break;
		case P_OUT: pump_log(m, fd, "out"); break;
		case P_ERR: pump_log(m, fd, "err"); break;
		case P_HEALTH: health_io(m, re); break;
		case P_WAITER:
			if (m->health.g)
				deploy_fail(m, "the deploy command went away before the switch");
			break;
		case P_TAMPER: tamper_dispatch(m->tamper, s->idx[i]); break;
		case P_RELAY: break;
		}
	}
}

static bool all_gone(const struct monitor *m)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (m->gens[i])
			return false;
	return true;
}

static int run_loop(struct monitor *m)
{
	struct pset s;

	for (;;) {
		health_tick(m);
		restart_tick(m);
		drain_tick(m);
		relay_expire(m->relay);
		log_rate_tick(m);
		idle_tick(m);
		tamper_tick(m->tamper);
		if (m->stopping && all_gone(m))
			break;
		build_pollset(m, &s);
		/* Short while a health check or a restart is due, else idle. */
		if (poll(s.fds, (nfds_t)s.n, m->health.g || m->restart_at > 0 ? 10 : 100) < 0 && errno != EINTR)
			return -1;
		dispatch(m, &s);
	}
	unlink(m->p.sock);
	m->current = NULL;
	write_running(m);
	reply(m, &m->stop_client, control_ok());
	return 0;
}

static int listen_ctl(struct monitor *m, slate_error_t *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(m->p.sock) >= sizeof(sa.sun_path))
		return slate_error_fail(err, "socket path `%s` too long", m->p.sock);
	strcpy(sa.sun_path, m->p.sock);
	m->ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->ctl < 0)
		return slate_error_sys(err, errno, "socket");
	unlink(m->p.sock);
	if (bind(m->ctl, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(m->p.sock, 0600) < 0 ||
	    listen(m->ctl, 16) < 0)
		return slate_error_sys(err, errno, "listen on `%s`", m->p.sock);
	return 0;
}

static int setup_signals(struct monitor *m, slate_error_t *err)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	m->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return m->sfd < 0 ? slate_error_sys(err, errno, "signalfd") : 0;
}

/* What was running before (a reboot, a killed monitor): start it again. */
static void resume(struct monitor *m)
{
	slate_error_t e = { 0 };
	json_t *rel = app_load(m->p.releases_json, &e);
	json_t *cur = rel ? app_current_release(rel) : NULL;
	const char *id = json_string_value(json_object_get(cur, "bundle"));

	if (id && !json_is_true(json_object_get(m->options, "stopped"))) {
		free(m->restart_bundle);
		m->restart_bundle = xstrdup(id);
		m->restart_release = json_integer_value(json_object_get(cur, "number"));
		m->restart_at = now();
	}
	json_decref(rel);
}

static int monitor_init(struct monitor *m, slate_error_t *err)
{
	m->health.fd = m->health.client = m->stop_client = m->ctl = m->sfd = m->host_netns = -1;
	m->backoff = 1;
	m->idle_until = now() + MONITOR_IDLE_GRACE;
	m->options = app_load(m->p.app_json, err);
	if (m->options == NULL)
		return -1;
	json_t *opts = json_incref(json_object_get(m->options, "options"));
	json_decref(m->options);
	m->options = opts ? opts : json_object();
	m->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	m->relay = relay_new(err);
	if (m->relay)
		relay_set_limits(m->relay, &m->limits);
	logfile_rate_init(&m->log_rate, LOGFILE_RATE_BYTES, LOGFILE_RATE_LINES);
	m->log = logfile_open(m->p.logs, LOG_MAX_BYTES, LOG_KEEP, err);
	if (m->host_netns < 0 || m->relay == NULL || m->log == NULL)
		return m->host_netns < 0 ? slate_error_sys(err, errno, "open the host network namespace") : -1;
	m->tamper = tamper_new(m->ctx, m->app, m->p.dir, m->log, &(struct tamper_hooks){ heal, m }, err);
	if (m->tamper == NULL)
		return -1;
	tamper_configure(m->tamper, m->options);
	if (load_network(m, err) < 0 || open_ports(m, err) < 0 || listen_ctl(m, err) < 0 || setup_signals(m, err) < 0)
		return -1;
	return 0;
}

static void monitor_free(struct monitor *m)
{
	free_network(m);
	discard_next_ports(m);
	free(m->restart_bundle);
	tamper_free(m->tamper);
	if (m->ctl >= 0)
		close(m->ctl);
	if (m->sfd >= 0)
		close(m->sfd);
	if (m->host_netns >= 0)
		close(m->host_netns);
	logfile_close(m->log);
	relay_free(m->relay);
	json_decref(m->options);
	app_paths_free(&m->p);
	if (m->cg.version) {
		slate_error_t ignore = { 0 };
		slate_cgroup_monitor_leave(SLATE_CGROUP_ROOT, &m->cg, &ignore);
	}
	slate_cgroup_free(&m->cg);
}

/* A test and operator knob: SLATE_RELAY_IDLE_TIMEOUT and
 * SLATE_RELAY_HALF_CLOSE_TIMEOUT, in seconds (1 to 86400), in the
 * environment of the command that starts the monitor. */
static unsigned env_seconds_ms(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	char *end = NULL;
	unsigned long n;

	if (v == NULL || *v == '\0')
		return dflt;
	n = strtoul(v, &end, 10);
	return *end == '\0' && n >= 1 && n <= 86400 ? (unsigned)n * 1000 : dflt;
}

/* The relay's limits from the fd limit (raised to the hard one first). */
static void monitor_limits(struct monitor *m)
{
	struct rlimit nofile = { 1024, 1024 };

	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
			(void)getrlimit(RLIMIT_NOFILE, &nofile);
	}
	relay_limits_for_nofile(&m->limits, (unsigned long)nofile.rlim_cur, MONITOR_FD_RESERVE);
	m->limits.idle_ms = env_seconds_ms("SLATE_RELAY_IDLE_TIMEOUT", m->limits.idle_ms);
	m->limits.half_close_ms = env_seconds_ms("SLATE_RELAY_HALF_CLOSE_TIMEOUT", m->limits.half_close_ms);
}

/* Each app's monitor in a cgroup of its own, with a memory limit (its
 * relay's socket memory included), so that what an app costs the host
 * beyond its instance is bounded and visible (attack review item 12). */
static int monitor_cgroup(struct monitor *m, slate_error_t *err)
{
	cleanup_free char *name = xasprintf("%s-monitor.%d", m->app, (int)getpid());

	return slate_cgroup_monitor_enter(SLATE_CGROUP_ROOT, name, MONITOR_MEMORY, &m->cg, err);
}

int monitor_main(struct slate_ctx *ctx, const char *app)
{
	struct monitor m = { .ctx = ctx, .app = app };
	slate_error_t err = { 0 };
	int lock, r;

	app_paths(ctx, app, &m.p);
	monitor_limits(&m);
	lock = open(m.p.monitor_lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
		if (lock >= 0)
			close(lock);
		return SLATE_EXIT_SYSTEM; /* another monitor is alive */
	}
	if (monitor_cgroup(&m, &err) < 0 || monitor_init(&m, &err) < 0) {
		if (m.log)
			logfile_note(m.log, "monitor: %s", err.msg);
		monitor_free(&m);
		close(lock);
		return report(&err);
	}
	note(&m, "monitor started (%s)", app);
	resume(&m);
	write_running(&m);
	r = run_loop(&m);
	note(&m, "monitor stopped (%s)", app);
	monitor_free(&m);
	close(lock);
	return r < 0 ? SLATE_EXIT_SYSTEM : 0;
}

bool monitor_alive(const struct slate_ctx *ctx, const char *app)
{
	struct app_paths p;
	int fd;
	bool alive = false;

	app_paths(ctx, app, &p);
	fd = open(p.monitor_lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		alive = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		close(fd);
	}
	app_paths_free(&p);
	return alive;
}

/* Ask the monitor to stop and wait (at most 10 s) until it has exited;
 * one that does not is killed (by the pid it gave, while it still holds
 * its lock). Its instances die with it (their parent-death signal). */
int monitor_stop(const struct slate_ctx *ctx, const char *app, slate_error_t *err)
{
	struct app_paths p;
	slate_error_t e = { 0 };
	json_t *st;
	pid_t pid = 0;

	if (!monitor_alive(ctx, app))
		return 0;
	app_paths(ctx, app, &p);
	st = control_call(p.sock, json_pack("{s:s}", "cmd", "status"), 3000, NULL, &e);
	pid = (pid_t)json_integer_value(json_object_get(st, "pid"));
	json_decref(st);
	json_decref(control_call(p.sock, json_pack("{s:s}", "cmd", "stop"), 60000, NULL, &e));
	app_paths_free(&p);
	for (int i = 0; i < 1000 && monitor_alive(ctx, app); i++)
		usleep(10000);
	if (monitor_alive(ctx, app) && pid > 1) {
		kill(pid, SIGKILL);
		for (int i = 0; i < 500 && monitor_alive(ctx, app); i++)
			usleep(10000);
	}
	return monitor_alive(ctx, app) ? slate_error_fail(err, "the monitor of `%s` did not stop", app) : 0;
}

/* slate-monitor, beside the running slate executable (both are installed
 * in one directory). */
static char *monitor_exe(slate_error_t *err)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	cleanup_free char *dir = NULL;
	char *exe;

	if (n < 0)
		return slate_error_sys(err, errno, "readlink `/proc/self/exe`"), NULL;
	self[n] = '\0';
	dir = slate_path_parent(self);
	exe = xasprintf("%s/slate-monitor", dir);
	if (access(exe, X_OK) < 0) {
		slate_error_sys(err, errno, "the monitor executable `%s`", exe);
		free(exe);
		return NULL;
	}
	return exe;
}

/* Detach: a new session, no terminal, stdio on /dev/null, an exec of
 * slate-monitor; the CLI waits for the socket to answer. */
int monitor_spawn(const struct slate_ctx *ctx, const char *app, slate_error_t *err)
{
	struct app_paths p;
	cleanup_free char *exe = NULL;
	pid_t pid;
	int r = -1;

	if (monitor_alive(ctx, app))
		return 0;
	exe = monitor_exe(err);
	if (exe == NULL)
		return -1;
	app_paths(ctx, app, &p);
	pid = fork();
	if (pid < 0) {
		app_paths_free(&p);
		return slate_error_sys(err, errno, "fork");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (setsid() < 0 || null < 0 || fork() != 0)
			_exit(0);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(exe, "slate-monitor", "--root", ctx->root, "--run-dir", ctx->run_dir, app, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 200 && r < 0; i++) {
		slate_error_t e = { 0 };
		json_t *reply = control_call(p.sock, json_pack("{s:s}", "cmd", "status"), 1000, NULL, &e);
		if (reply) {
			r = 0;
			json_decref(reply);
		} else {
			usleep(25000);
		}
	}
	if (r < 0)
		slate_error_fail(err, "the monitor of `%s` did not start (see %s/current.log)", app, p.logs);
	app_paths_free(&p);
	return r;
}
