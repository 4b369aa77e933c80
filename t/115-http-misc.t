# The smaller edges of issue 13: a backend's 103 Early Hints is passed on
# before the real answer (not a 502); X-Forwarded-Proto says https on an
# ssl listener and http on a plain one. A held streaming client, whose
# head the gateway sent already (hold_progress), gets no 1xx in its stream.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGRaw;

my $dir = tmpdir();
my $blog = "$dir/backend.log";
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;');
# a second upstream that boots in 2s, so that a streaming client is held and gets progress
my $slow = 'sleep 2; ' . raw_backend_launch("$dir/backend2.log");
$slow =~ s/"/\\"/g;
$text .= "upstream slow { launch exec \"$slow\"; health /wg-health; warmup off; idle_timeout 60s; }\n";
$text =~ s{location / \{ proxy_pass digits; \}}{location / { proxy_pass digits; }\n\tlocation /held/ { proxy_pass slow; }} or die;
my $sport = free_port();
my $have_tls = system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost " .
	"-keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0;
$text =~ s{(server \{\n)}{server {\n\tlisten 127.0.0.1:$sport ssl;\n\tssl_certificate $dir/cert.pem;\n\tssl_certificate_key $dir/key.pem;\n\tlocation / { proxy_pass digits; }\n}\n$1} if $have_tls;
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $H = "Host: x\r\n";
my ($r) = raw_exchange($port, "GET /warm HTTP/1.1\r\n$H\r\n", quiet => 60);
like($r, qr/^HTTP\/1\.1 200/, 'a plain request is answered (the backend is up)');

($r) = raw_exchange($port, "GET /early HTTP/1.1\r\n$H\r\n");
is(statuses($r), '103,200', 'a backend\'s 103 Early Hints reaches the client before the 200');
like($r, qr{^Link: </s\.css>; rel=preload\r$}m, '  with its Link header');
like($r, qr/ok \/early/, '  and the real answer follows whole');
($r) = raw_exchange($port, "GET /early10 HTTP/1.0\r\n\r\n");
is(statuses($r), '200', 'an HTTP/1.0 client gets the 200 only (no 1xx for it)');
($r) = raw_exchange($port, "GET /next HTTP/1.1\r\n$H\r\n");
is(statuses($r), '200', 'the next request is answered');

($r) = raw_exchange($port, "GET /held/early HTTP/1.1\r\n${H}Accept: text/event-stream\r\nConnection: close\r\n\r\n",
	quiet => 15);
like($r, qr/^: wakegate: slow booting/m, 'a streaming client held through a boot gets progress');
is(statuses($r), '200', '  and its one head: the backend\'s 103 is not written into the stream');
like($r, qr/ok \/held\/early/, '  then the backend\'s answer');

my ($plain) = grep { /^REQ \d+ GET \/warm / } backend_log($blog);
like($plain // '', qr/X-Forwarded-Proto:http(\||$)/, 'X-Forwarded-Proto is http from a plain listener');
SKIP: {
	skip 'openssl cannot make a test certificate', 2 unless $have_tls;
	my $out = `curl -sk https://127.0.0.1:$sport/over-tls 2>&1`;
	like($out, qr/ok \/over-tls/, 'a request through the ssl listener is answered');
	my ($tls) = grep { /^REQ \d+ GET \/over-tls / } backend_log($blog);
	like($tls // '', qr/X-Forwarded-Proto:https(\||$)/, 'X-Forwarded-Proto is https from an ssl listener');
}
done_testing();
