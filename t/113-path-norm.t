# Locations match the normalised path, as nginx's do: /limite%64,
# /%6cimited, /x/../limited, //limited and /x/%2e%2e/limited all fall under
# "location /limited" and its limit_req; the backend still gets the target
# the client sent. A path above the root is a 400. With "proxy_pass
# http://NAME/URI" the prefix of a target that is already normal is
# replaced in the client's bytes; any other target sends its normalised
# path, escaped again, as nginx does: nothing climbs out of URI.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGRaw;

my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;',
	extra => 'limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;');
# a location of its own for /limited, with a limit nothing else has
$text =~ s{location / \{ proxy_pass digits; \}}{location / { proxy_pass digits; }\n\tlocation /limited { proxy_pass digits; limit_req zone=one nodelay; limit_req_status 429; }\n\tlocation /api/ { proxy_pass http://digits/v2/; }};
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $H = "Host: x\r\n";
my ($r) = raw_exchange($port, "GET /warm HTTP/1.1\r\n$H\r\n", quiet => 60);
like($r, qr/^HTTP\/1\.1 200/, 'a plain request is answered (the backend is up)');

($r) = raw_exchange($port, "GET /limited HTTP/1.1\r\n$H\r\n");
is(statuses($r), '200', 'the first request to /limited passes (1r/m)');
for my $p ('/limited', '/limite%64', '/%6cimited', '/x/../limited', '//limited', '/./limited', '/x/%2e%2e/limited',
	'/x/..%2flimited', '/LIMITED/../limited?q=1') {
	($r) = raw_exchange($port, "GET $p HTTP/1.1\r\n$H\r\n");
	is(statuses($r), '429', "$p falls under location /limited and its limit");
}
($r) = raw_exchange($port, "GET /limitedx/../other HTTP/1.1\r\n$H\r\n");
is(statuses($r), '200', '/limitedx/../other is /other: not limited');
($r) = raw_exchange($port, "GET /a//b/./c/../d%2Fe HTTP/1.1\r\n$H\r\n");
is(statuses($r), '200', 'a path with merged slashes and dot segments is answered');
my ($line) = grep { /^REQ \d+ GET \/a\/\/b/ } backend_log($blog);
like($line // '', qr{^REQ \d+ GET /a//b/\./c/\.\./d%2Fe }, '  and goes upstream with the target the client sent');
($r, my $closed) = raw_exchange($port, "GET /x/../../c HTTP/1.1\r\n$H\r\n");
is(statuses($r), '400', 'a path above the root is a 400, as nginx');
($r) = raw_exchange($port, "GET /c%00 HTTP/1.1\r\n$H\r\n");
is(statuses($r), '400', 'an encoded NUL is a 400, as nginx');

# proxy_pass with a URI: the prefix replaced, in the normalised path when the client's is not
my %want = ('/api/c?x=%41' => '/v2/c?x=%41', '/x/../api/a?q=1' => '/v2/a?q=1', '//api/a' => '/v2/a',
	'/%61pi/a%20b' => '/v2/a%20b', '/api/a/../b' => '/v2/b', '/api/a/../../api/b' => '/v2/b',
	'/api/%2e%2e/api/%25' => '/v2/%25');
for my $p (sort keys %want) {
	my $n0 = () = grep { /^REQ / } backend_log($blog);
	($r) = raw_exchange($port, "GET $p HTTP/1.1\r\n$H\r\n");
	is(statuses($r), '200', "$p is answered through location /api/");
	my @reqs = grep { /^REQ / } backend_log($blog);
	my ($target) = ($reqs[$n0] // '') =~ /^REQ \d+ GET (\S+) /;
	is($target // '', $want{$p}, "  and reaches the backend as $want{$p}");
}
done_testing();
