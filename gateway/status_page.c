/*
 * status_page: serves gateway/status_page.html (see status_page.h). The
 * build turns the .html into status_page_html.h, one C string, so the page
 * is edited as HTML and the installed gateway needs no file beside it.
 */
#include "config.h"
#include "gateway/status_page.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

static const char page[] =
#include "gateway/status_page_html.h"
	;

int status_page_serve(struct evhttp_request *req, const char *path)
{
	if (!path || (strcmp(path, "/") != 0 && strcmp(path, "/ui") != 0))
		return 0;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	/* the page is its own only asset: it may script itself and call this listener, nothing else */
	evhttp_add_header(h, "Content-Security-Policy",
			  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
			  "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	struct evbuffer *out = evbuffer_new();
	if (out)
		evbuffer_add_reference(out, page, sizeof(page) - 1, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", out);
	if (out)
		evbuffer_free(out);
	return 1;
}
