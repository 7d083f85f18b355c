/* slate: the per-app monitor (see monitor.h).
 *
 * One thread, one poll loop. A "generation" is one instance of the app:
 * the current one serves; during a deploy a next one starts and is health
 * checked while the current keeps serving; after the switch the old one
 * drains (open connections finish, new ones go to the new generation) and
 * is stopped. The monitor never parses anything from inside an instance
 * except an HTTP status line of its health check. */
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

/* "[IP:]HOSTPORT:PORT" */
static int parse_port(const char *s, struct port *p, slate_error_t *err)
{
	char ip[64] = "127.0.0.1";
	int a = 0, b = 0;

	if (sscanf(s, "%63[0-9.]:%d:%d", ip, &a, &b) != 3 && (strcpy(ip, "127.0.0.1"), sscanf(s, "%d:%d", &a, &b) != 2))
		return slate_error_usage(err, "port `%s` is not [HOSTIP:]HOSTPORT:PORT", s);
	if (a < 1 || a > 65535 || b < 1 || b > 65535)
		return slate_error_usage(err, "port `%s`: ports are 1-65535", s);
	p->host_ip = xstrdup(ip);
	p->host_port = a;
	p->port = b;
	p->fd = -1;
	return 0;
}

/* "[IP:]PORT=HOST:HOSTPORT" */
static int parse_connect(const char *s, struct connect *c, slate_error_t *err)
{
	char ip[64] = "127.0.0.1", host[64];
	int a = 0, b = 0;

	if (sscanf(s, "%63[0-9.]:%d=%63[0-9.]:%d", ip, &a, host, &b) != 4 &&
	    (strcpy(ip, "127.0.0.1"), sscanf(s, "%d=%63[0-9.]:%d", &a, host, &b) != 3))
		return slate_error_usage(err, "connect `%s` is not [IP:]PORT=HOST:HOSTPORT", s);
	if (a < 1 || a > 65535 || b < 1 || b > 65535)
		return slate_error_usage(err, "connect `%s`: ports are 1-65535", s);
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

static int load_network(struct monitor *m, slate_error_t *err)
{
	json_t *ports = json_object_get(m->options, "ports"), *conns = json_object_get(m->options, "connects"), *v;
	json_t *off = json_object_get(m->options, "ports_off");
	size_t i;

	json_array_foreach (ports, i, v) {
		if (m->nports == MAX_PORTS || parse_port(json_string_value(v), &m->ports[m->nports], err) < 0)
			return m->nports == MAX_PORTS ? slate_error_usage(err, "too many ports") : -1;
		for (size_t k = 0; k < json_array_size(off); k++)
			if (json_integer_value(json_array_get(off, k)) == m->ports[m->nports].host_port)
				m->ports[m->nports].off = true;
		m->nports++;
	}
	json_array_foreach (conns, i, v) {
		if (m->nconnects == MAX_PORTS ||
		    parse_connect(json_string_value(v), &m->connects[m->nconnects], err) < 0)
			return m->nconnects == MAX_PORTS ? slate_error_usage(err, "too many connects") : -1;
		m->nconnects++;
	}
	m->connects_off = json_is_true(json_object_get(m->options, "connects_off"));
	return 0;
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
	if (slate_store_load(m->ctx->root, bundle_id, &g->bundle, err) < 0 || gen_env(m, g, err) < 0)
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

static void write_running(struct monitor *m)
{
	slate_error_t ignore = { 0 };
	json_t *o = json_object(), *ports = json_array();
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
	for (size_t i = 0; i < m->nports; i++)
		json_array_append_new(ports, json_sprintf("%s:%d->%d%s", m->ports[i].host_ip, m->ports[i].host_port,
							  m->ports[i].port, m->ports[i].off ? " (off)" : ""));
	json_object_set_new(o, "ports", ports);
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

static bool same_key(json_t *a, json_t *b, const char *key)
{
	json_t *x = json_object_get(a, key), *y = json_object_get(b, key);

	return (x == NULL && y == NULL) || (x && y && json_equal(x, y));
}

/* A deploy's options become the app's at the switch: published ports and
 * granted services follow them (listeners kept when nothing changed). */
static void apply_options(struct monitor *m, json_t *options)
{
	static const char *const net[] = { "ports", "ports_off", "connects", "connects_off" };
	bool same = true;
	slate_error_t e = { 0 };

	if (options == NULL || options == m->options)
		return;
	for (size_t i = 0; i < sizeof(net) / sizeof(net[0]); i++)
		same = same && same_key(m->options, options, net[i]);
	json_decref(m->options);
	m->options = json_incref(options);
	tamper_configure(m->tamper, m->options);
	if (same)
		return;
	free_network(m);
	if (load_network(m, &e) < 0 || open_ports(m, &e) < 0)
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
	g = gen_start(m, bundle, release, json_object_get(req, "options"), &e);
	if (g == NULL)
		return reply(m, &client, control_error(&e));
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

/* A client on a published port: to the current generation's port, with a
 * PROXY line when the image asks for one on that port. */
static void accept_port(struct monitor *m, struct port *p)
{
	slate_error_t e = { 0 };
	int client = accept4(p->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up;
	json_t *proxy;
	char line[160];
	int len = 0, target = p->port;

	if (client < 0)
		return;
	if (m->current == NULL || m->current->exited) {
		close(client);
		return;
	}
	proxy = json_object_get(json_object_get(m->current->bundle.m.image, "proxy_protocol"), "80");
	if (p->port == 80 && json_is_integer(proxy)) {
		target = (int)json_integer_value(proxy);
		len = relay_proxy_v1(client, line, sizeof(line), &e);
	}
	up = relay_connect_in(instance_netns_fd(m->current->in), m->host_netns, "127.0.0.1", target, &e);
	if (up < 0 || len < 0 ||
	    relay_add(m->relay, client, up, line, len > 0 ? (size_t)len : 0, (int)m->current->id, &e) < 0) {
		if (up >= 0 && len < 0)
			close(up);
		if (up < 0 || len < 0)
			close(client);
	}
}

/* Something inside the instance connects to a granted service. */
static void accept_connect(struct monitor *m, struct gen *g, size_t i)
{
	slate_error_t e = { 0 };
	int client = accept4(g->listen[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), up;

	if (client < 0)
		return;
	up = relay_connect_in(m->host_netns, m->host_netns, m->connects[i].host, m->connects[i].host_port, &e);
	if (up < 0) {
		close(client);
		return;
	}
	relay_add(m->relay, client, up, NULL, 0, (int)g->id, &e);
}

static void pump_log(struct monitor *m, int *fd, const char *stream)
{
	char buf[16384];
	ssize_t n = read(*fd, buf, sizeof(buf));
	slate_error_t ignore = { 0 };

	if (n > 0) {
		if (m->log)
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
	s->n = 0;
	padd(s, m->sfd, POLLIN, P_SIG, 0, 0);
	padd(s, m->ctl, POLLIN, P_CTL, 0, 0);
	padd(s, relay_epoll_fd(m->relay), POLLIN, P_RELAY, 0, 0);
	for (size_t i = 0; i < m->nports; i++)
		padd(s, m->ports[i].fd, POLLIN, P_PORT, 0, i);
	for (int k = 0; k < MAX_GENS; k++) {
		struct gen *g = m->gens[k];
		if (g == NULL)
			continue;
		padd(s, g->out, POLLIN, P_OUT, g->id, 0);
		padd(s, g->err, POLLIN, P_ERR, g->id, 0);
		for (size_t i = 0; i < m->nconnects; i++)
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
	m->options = app_load(m->p.app_json, err);
	if (m->options == NULL)
		return -1;
	json_t *opts = json_incref(json_object_get(m->options, "options"));
	json_decref(m->options);
	m->options = opts ? opts : json_object();
	m->host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	m->relay = relay_new(err);
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
}

int monitor_main(struct slate_ctx *ctx, const char *app)
{
	struct monitor m = { .ctx = ctx, .app = app };
	slate_error_t err = { 0 };
	int lock, r;

	app_paths(ctx, app, &m.p);
	/* Each relayed connection holds six fds (two sockets, two pipes). */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	lock = open(m.p.monitor_lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0)
		return SLATE_EXIT_SYSTEM; /* another monitor is alive */
	if (monitor_init(&m, &err) < 0) {
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
