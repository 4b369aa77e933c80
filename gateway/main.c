/*
 * wakegate: the daemon's entry. Parses the command line (nginx's flags),
 * tests or loads the conf, sends signals to a running daemon, or runs the
 * loop: listeners, upstreams, signals (reload, graceful stop, log reopen).
 * main.c fills and frees gw.base, gw.conf, gw.metrics and gw.store (the
 * global itself is in gw.c).
 */
#include "config.h"
#include "gateway/clients.h"
#include "gateway/tenant.h"
#include "gateway/client_conn.h"
#include "gateway/proxy.h"
#include "gateway/accesslog.h"
#include "gateway/conf.h"
#include "gateway/gw.h"
#include "gateway/launch.h"
#include "gateway/launch_check.h"
#include "gateway/launch_proc.h"
#include "gateway/start_check.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/sd_notify.h"
#include "gateway/server.h"
#include "gateway/tls.h"
#include "gateway/store.h"
#include "gateway/redis_conn.h"
#include "gateway/fleet_peers.h"
#include "gateway/upstream.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *conf_path;		/* as resolved from -c and -p */
static char *prefix;
static double stop_started;
static int stop_late_logged;	/* the grace ran out: said once */
static struct event *sig_ev[6];
static struct event *stop_ev;
static char *pid_written;	/* the pid file we made, to remove at exit */

/* Makefile.am defines both from configure's directories; these are for a build without it */
#ifndef WG_PREFIX
#define WG_PREFIX "/usr/local/share/wakegate"
#endif
#ifndef WG_CONF_PATH
#define WG_CONF_PATH "/usr/local/etc/wakegate/wakegate.conf"
#endif

#define SHUTDOWN_GRACE_S 30


static void usage(FILE *f)
{
	fprintf(f,
		"Usage: wakegate [-?hvtT] [-s signal] [-p prefix] [-c filename]\n"
		"\n"
		"Options:\n"
		"  -?,-h         : this help\n"
		"  -v            : show version and exit\n"
		"  -t            : test configuration and exit\n"
		"  -T            : test configuration, dump it and exit\n"
		"  -s signal     : send signal to the running daemon: stop, quit, reload, reopen\n"
		"  -p prefix     : set prefix path (default: " WG_PREFIX ")\n"
		"  -c filename   : set configuration file (default: " WG_CONF_PATH ")\n");
}

/* Writes the text of the conf file to stdout, as nginx -T does. */
static void dump_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	printf("# configuration file %s:\n", path);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	printf("\n");
	fclose(f);
}

/* The -s flag: the daemon is found through the pid file the conf names. */
static int send_signal(const struct conf *c, const char *name)
{
	static const struct { const char *name; int sig; } sigs[] = {
		{ "stop", SIGTERM }, { "quit", SIGQUIT }, { "reload", SIGHUP }, { "reopen", SIGUSR1 },
	};
	int sig = 0;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(name, sigs[i].name) == 0)
			sig = sigs[i].sig;
	if (!sig) {
		fprintf(stderr, "wakegate: invalid option: \"-s %s\"\n", name);
		return 1;
	}
	if (!c->pid_path) {
		fprintf(stderr, "wakegate: no \"pid\" file in %s: cannot signal the daemon "
			"(add \"pid wakegate.pid;\" and restart it, or signal it with kill)\n", c->file);
		return 1;
	}
	FILE *f = fopen(c->pid_path, "r");
	long pid = 0;
	if (!f) {
		fprintf(stderr, "wakegate: open() \"%s\" failed (%d: %s)\n", c->pid_path, errno, strerror(errno));
		return 1;
	}
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
		fclose(f);
		fprintf(stderr, "wakegate: invalid PID number in \"%s\"\n", c->pid_path);
		return 1;
	}
	fclose(f);
	if (kill((pid_t)pid, sig) < 0) {
		fprintf(stderr, "wakegate: kill(%ld, %d) failed (%d: %s)\n", pid, sig, errno, strerror(errno));
		return 1;
	}
	return 0;
}

/* Written through a temporary file and rename(), so -s never reads half a pid. */
static int write_pid(const char *path)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	pid_written = strdup(path);
	return 0;
}

/* At exit; remembers the path written, since a reload may have changed the conf. */
static void remove_pid(void)
{
	if (!pid_written)
		return;
	/* only if it is still ours: a new daemon may have taken the path */
	FILE *f = fopen(pid_written, "r");
	long pid = 0;
	if (f) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	if (pid == (long)getpid())
		unlink(pid_written);
	free(pid_written);
	pid_written = NULL;
}

/* Opens logs named by c. On reload a failure keeps the old ones (logged). */
static int open_logs(const struct conf *c)
{
	if (log_open(c->error_log_path, c->error_log_level) < 0) {
		log_emerg("open() \"%s\" failed (%d: %s)", c->error_log_path, errno, strerror(errno));
		return -1;
	}
	if (accesslog_open(c->access_log_path) < 0) {
		log_emerg("open() \"%s\" failed (%d: %s)", c->access_log_path, errno, strerror(errno));
		return -1;
	}
	return 0;
}

/* A line of conf_keep_restart_only(): a directive that waits for the next start. */
static void say_kept(const char *line)
{
	log_warn("reload: %s", line);
}

/* SIGHUP: a new conf replaces the old only when it loads and its listeners open;
 * otherwise the error is logged and the old conf keeps serving. */
static void reload(void)
{
	char err[1024];
	log_notice("reloading %s", conf_path);
	struct conf *c = conf_load(conf_path, prefix, err, sizeof(err));
	if (c && tls_conf_check(c, err, sizeof(err)) < 0) {
		conf_free(c);
		c = NULL;
	}
	if (!c) {
		log_error("reload failed, the old configuration stays: %s", err);
		return;
	}
	/* the fleet's locks and shared state live in the Redis the gateway started
	 * with; daemon and pid act at a start: their rows say "restart only". Before
	 * server_configure: it points the Redis limit zones at c's redis line. */
	conf_keep_restart_only(c, gw.conf, say_kept);
	if (server_configure(c, err, sizeof(err)) < 0) {
		log_error("reload failed, the old configuration stays: %s", err);
		conf_free(c);
		return;
	}
	store_set_auth(gw.store, c->redis_user, c->redis_password);	/* password=FILE is read again */
	struct conf *old = gw.conf;
	gw.conf = c;
	if (open_logs(c) < 0)
		log_error("reload: logs stay where they were");
	if (upstream_configure(c) < 0)
		log_error("reload: out of memory while reconciling upstreams");
	/* nothing keeps pointers into the old conf: upstreams copied or re-pointed, requests copied */
	conf_free(old);
	log_notice("reload done");
}

/* Polls, while stopping, until nothing is held, in flight or running. */
static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	double waited = gw_now() - stop_started;
	if (upstream_all_done()) {
		event_base_loopbreak(gw.base);
		return;
	}
	if (waited > SHUTDOWN_GRACE_S && !stop_late_logged) {
		/* every replica has drained since begin_stop: there is no faster way left, only the wait */
		log_warn("shutdown: still busy after %ds, waiting 15s more", SHUTDOWN_GRACE_S);
		stop_late_logged = 1;
	}
	if (waited > SHUTDOWN_GRACE_S + 15) {
		log_alert("shutdown: giving up waiting");
		event_base_loopbreak(gw.base);
	}
}

/* SIGTERM/SIGINT/SIGQUIT: all graceful (held get 503, in-flight finish, workers stop). */
static void begin_stop(const char *why)
{
	if (gw.stopping)
		return;
	log_notice("%s, shutting down", why);
	sdnotify("STOPPING=1");
	gw.stopping = 1;
	stop_started = gw_now();
	server_stop_accepting();
	upstream_shutdown();
	stop_ev = event_new(gw.base, -1, EV_PERSIST, stop_check_cb, NULL);
	struct timeval tv = { 0, 50000 };
	event_add(stop_ev, &tv);
}

/* Every signal arrives here, on the loop (evsignal), never in a handler. */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP:
		if (!gw.stopping) {
			sdnotify("RELOADING=1");
			reload();
			sdnotify("READY=1");
		}
		break;
	case SIGTERM:
	case SIGINT:
		begin_stop(sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGQUIT:
		begin_stop("SIGQUIT");
		break;
	case SIGUSR1:
		log_notice("reopening logs");
		if (log_reopen() < 0 || accesslog_reopen() < 0)
			log_error("reopening logs failed (%d: %s)", errno, strerror(errno));
		break;
	}
}

/* "daemon on": the parent exits 0 once the listeners are bound. */
static int daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	setsid();
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (gw.conf->error_log_path && strcmp(gw.conf->error_log_path, "stderr") != 0)
			dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/* The daemon proper: owns every gw.* object from creation to free. */
static int run(void)
{
	char err[1024];
	if (open_logs(gw.conf) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(time(NULL) ^ getpid()));
	/* the changelist halves epoll_ctl calls per proxied request; the precise
	 * clock keeps timers from waking the loop early: libevent's default coarse
	 * clock moves in kernel ticks (4 ms), and each timer then spins through
	 * 1 ms epoll_waits until the clock catches up (16 of 27 idle wakeups a
	 * second went that way) */
	struct event_config *ecfg = event_config_new();
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	gw.base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	gw.metrics = metrics_new();
	if (!gw.base || !gw.metrics) {
		log_emerg("out of memory");
		return 1;
	}
	upstream_metrics_declare(gw.metrics);
	clients_metrics_declare(gw.metrics);
	server_init();
	/* bind before going to the background, so that a busy port fails the start */
	if (server_configure(gw.conf, err, sizeof(err)) < 0) {
		log_emerg("%s", err);
		server_free_all();
		return 1;
	}
	if (gw.conf->daemon) {
		if (daemonize() < 0) {
			log_emerg("fork() failed (%d: %s)", errno, strerror(errno));
			return 1;
		}
		if (event_reinit(gw.base) < 0) {
			log_emerg("event_reinit() failed after fork");
			return 1;
		}
	}
	/* host names in replica URLs resolve without blocking the loop; /etc/hosts is read too */
	struct evdns_base *dns = evdns_base_new(gw.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!dns)
		log_warn("no DNS resolver (/etc/resolv.conf): host names in replica URLs resolve with a blocking lookup");
	proxy_set_dns(dns);
	if (!gw.conf->redis_host)
		log_warn("no redis in %s: state is kept in memory only, for this gateway alone", gw.conf->file);
	struct redis_conn_cfg rc = { .host = gw.conf->redis_host, .port = gw.conf->redis_port,
				     .user = gw.conf->redis_user, .password = gw.conf->redis_password,
				     .tls = gw.conf->redis_tls, .tls_ca = gw.conf->redis_tls_ca,
				     .tls_name = gw.conf->redis_tls_name, .tls_cert = gw.conf->redis_tls_cert,
				     .tls_key = gw.conf->redis_tls_key };
	gw.store = store_new(gw.base, &rc, gw.conf->redis_prefix);
	fleet_peers_start(gw.conf);
	if (gw.conf->pid_path && write_pid(gw.conf->pid_path) < 0) {
		log_emerg("open() \"%s\" failed (%d: %s)", gw.conf->pid_path, errno, strerror(errno));
		server_free_all();
		return 1;
	}
	if (upstream_configure(gw.conf) < 0) {
		log_emerg("cannot set up the upstreams");
		return 1;
	}
	static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1 };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sig_ev[i] = evsignal_new(gw.base, sigs[i], signal_cb, NULL);
		evsignal_add(sig_ev[i], NULL);
	}
	log_notice("wakegate " PACKAGE_VERSION " started, conf %s", conf_path);
	sdnotify("READY=1");	/* listeners bound, upstreams set up: a Type=notify unit is started */
	event_base_dispatch(gw.base);

	upstream_free_all();
	server_free_all();
	client_conn_free_all();
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		event_free(sig_ev[i]);
	if (stop_ev)
		event_free(stop_ev);
	launch_proc_cleanup();
	store_free(gw.store);
	fleet_peers_free();
	tenant_free_all();
	metrics_free(gw.metrics);
	remove_pid();
	log_notice("exit");
	proxy_set_dns(NULL);
	if (dns)
		evdns_base_free(dns, 0);
	event_base_free(gw.base);
	return 0;
}

int main(int argc, char **argv)
{
	int test = 0, dump = 0;
	const char *sig = NULL, *cfile = NULL, *pfx = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "c:p:s:tTvh?")) != -1) {
		switch (opt) {
		case 'c': cfile = optarg; break;
		case 'p': pfx = optarg; break;
		case 's': sig = optarg; break;
		case 't': test = 1; break;
		case 'T': test = dump = 1; break;
		case 'v':
			printf("wakegate version: wakegate/%s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			/* "-?" is a listed option: getopt returns '?' and leaves optopt unset */
			if (opt == '?' && (optopt == 0 || optopt == '?')) {
				usage(stdout);
				return 0;
			}
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "wakegate: invalid option: \"%s\"\n", argv[optind]);
		usage(stderr);
		return 1;
	}
	/* nginx's rule: the prefix and the conf are compiled in (where make install
	 * put them); a relative -c resolves against the prefix */
	if (!pfx)
		pfx = WG_PREFIX;
	prefix = strdup(pfx);
	if (!cfile)
		cfile = WG_CONF_PATH;
	if (cfile[0] != '/') {
		size_t n = strlen(prefix) + strlen(cfile) + 2;
		conf_path = malloc(n);
		snprintf(conf_path, n, "%s/%s", prefix, cfile);
	} else {
		conf_path = strdup(cfile);
	}
	char err[1024];
	gw.conf = conf_load(conf_path, prefix, err, sizeof(err));
	if (gw.conf && !sig && (tls_conf_check(gw.conf, err, sizeof(err)) < 0 ||	/* certificates, keys, ciphers */
				(test && launch_check(gw.conf, err, sizeof(err)) < 0) ||	/* programs, models */
				(test && start_check(gw.conf, err, sizeof(err)) < 0))) {	/* log/pid dirs, listen */
		conf_free(gw.conf);
		gw.conf = NULL;
	}
	if (!gw.conf) {
		fprintf(stderr, "wakegate: %s\n", err);
		if (test)
			fprintf(stderr, "wakegate: configuration file %s test failed\n", conf_path);
		free(conf_path);
		free(prefix);
		return 1;
	}
	int rc;
	if (test) {
		if (dump) {
			dump_file(conf_path);
			for (int i = 0; i < gw.conf->nincluded; i++)
				dump_file(gw.conf->included[i]);
		}
		fprintf(stderr, "wakegate: the configuration file %s syntax is ok\n", conf_path);
		fprintf(stderr, "wakegate: configuration file %s test is successful\n", conf_path);
		rc = 0;
	} else if (sig) {
		rc = send_signal(gw.conf, sig);
	} else {
		/* once, before any thread: the warmer's libcurl handles need it */
		curl_global_init(CURL_GLOBAL_DEFAULT);
		sdnotify_init();
		rc = run();
		sdnotify_free();
		curl_global_cleanup();
	}
	conf_free(gw.conf);
	log_close();
	accesslog_close();
	free(conf_path);
	free(prefix);
	return rc;
}
