/*
 * status_page: the admin listener's page for people (GET / and /ui): one
 * self-contained HTML file that polls /status and draws each upstream's
 * state, its last hour, holds, cost, and wake/sleep buttons. The page is
 * gateway/status_page.html, compiled in as a string; nothing is read at run
 * time and nothing is owned past a call.
 */
#ifndef WG_STATUS_PAGE_H
#define WG_STATUS_PAGE_H

struct evhttp_request;

/* Answers req with the page when path is "/" or "/ui" (GET or HEAD) and
 * returns 1; returns 0 without touching req for any other path. */
int status_page_serve(struct evhttp_request *req, const char *path);

#endif
