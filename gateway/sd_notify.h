/*
 * sd_notify: tells systemd (a Type=notify unit) when the gateway is ready,
 * reloading and stopping. systemd's protocol is one datagram to the unix
 * socket named in $NOTIFY_SOCKET; this is that, without linking libsystemd.
 * The module owns the copied socket path from sdnotify_init to sdnotify_free;
 * each message opens and closes its own socket.
 */
#ifndef WG_SD_NOTIFY_H
#define WG_SD_NOTIFY_H

/* Takes $NOTIFY_SOCKET and removes it from the environment, so that the
 * workers the gateway launches do not report to systemd in its name. */
void sdnotify_init(void);

/* Sends "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..." (lines may be
 * joined with \n). Does nothing outside systemd; never blocks; errors are
 * ignored, as systemd's own sd_notify lets callers do. */
void sdnotify(const char *msg);

void sdnotify_free(void);

#endif
