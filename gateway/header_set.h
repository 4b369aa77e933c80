/*
 * header_set: the values of a location's proxy_set_header lines for one
 * request (conf_header.c reads the lines). The variables are nginx's:
 * $host (the Host without its port, lower case), $http_host (the Host as
 * sent), $http_NAME (a client header, "_" for "-"), $remote_addr, $scheme,
 * $proxy_host (the replica's HOST:PORT) and $request_uri.
 */
#ifndef WG_HEADER_SET_H
#define WG_HEADER_SET_H

struct conf_header;
struct evhttp_request;

/*
 * name, value, name, value, ..., NULL for proxy_opts.set_headers; the caller
 * frees it with header_set_free(). NULL when h is NULL or out of memory.
 */
char **header_set_expand(const struct conf_header *h, struct evhttp_request *req, const char *replica_url);
void header_set_free(char **list);

#endif
