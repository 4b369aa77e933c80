# limit_conn in the running gateway: requests in flight (proxied or held)
# count per key; one over gets limit_conn_status with Retry-After: 1; the
# slot comes back when the request ends, also when its client leaves.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGLimits;

my $be = backend_cmd();
$be =~ s/"/\\"/g;
my ($text, $port, $admin) = gw_conf_text(
	main => <<'EOM',
limit_conn_zone $binary_remote_addr zone=c:1m;
limit_conn_zone $http_x_api_key zone=k:1m;
limit_conn_zone $binary_remote_addr zone=h:1m;
EOM
	upstreams => qq{upstream be { launch exec "$be"; warmup off; idle_timeout 60s; max_conns 8; }
upstream cold { launch exec "sleep 2; $be"; warmup off; idle_timeout 60s; hold 10 timeout=30s; stop_grace 1s; }},
	locations => <<'EOL');
	location /slowc { proxy_pass be; limit_conn c 2; limit_conn_status 429; }
	location /slowk { proxy_pass be; limit_conn k 1; }
	location /cold/ { proxy_pass cold; limit_conn h 1; }
	location / { proxy_pass be; }
EOL
my $g = gw_start(conf => $text, port => $port, admin => $admin);
is(WG::http_get("$g->{url}/warm")->{status}, 200, 'the backend is up');

sub in_flight { return gw_status($g)->{upstreams}{$_[0]}{in_flight} // -1 }
sub held { return gw_status($g)->{upstreams}{$_[0]}{held} // -1 }

my @s = map { raw_send($port, "/slowc?ms=4000&id=$_") } 1 .. 2;
ok(wait_until(sub { in_flight('be') == 2 }, 30), 'two slow requests from one client are in flight');
my $r = WG::http_get("$g->{url}/slowc?ms=1&id=third");
is($r->{status}, 429, 'a third one from the same address gets limit_conn_status 429');
is($r->{headers}{'retry-after'}, 1, 'with Retry-After: 1');
like($r->{content}, qr/limiting connections by zone \\"c\\"/, 'and a JSON reason naming the zone');
is(metric($g, 'wakegate_limit_conn_rejected_total', 'zone="c"'), 1, '/metrics counts the rejection by zone');
like(gw_log($g), qr/\[error\] .*limiting connections by zone "c", client: 127\.0\.0\.1/, 'the error log says so as nginx does');
is(WG::http_get("$g->{url}/other")->{status}, 200, 'a location without limit_conn is not limited');

close $s[0];
ok(wait_until(sub { in_flight('be') == 1 }, 30), 'a client that leaves ends its request');
is(WG::http_get("$g->{url}/slowc?ms=1&id=after")->{status}, 200, 'and its slot is free again');
my $buf;
my $a;
ok(wait_until(sub { $a = raw_answer($s[1], \$buf) }, 30), 'the other slow request finishes');
is($a && $a->{status}, 200, 'with 200');
my @st = map { WG::http_get("$g->{url}/slowc?ms=1&id=seq$_")->{status} } 1 .. 3;
is_deeply(\@st, [200, 200, 200], 'requests one after another are never limited: each slot is released at the end');

# per key: $http_x_api_key
my $k = raw_send($port, '/slowk?ms=4000', 'X-Api-Key' => 'alice');
ok(wait_until(sub { in_flight('be') == 1 }, 30), 'key alice has one request in flight');
is(WG::http_get("$g->{url}/slowk?ms=1", headers => { 'X-Api-Key' => 'alice' })->{status}, 503,
	'a second one for alice gets the default limit_conn_status 503');
is(WG::http_get("$g->{url}/slowk?ms=1", headers => { 'X-Api-Key' => 'bob' })->{status}, 200, 'key bob is counted apart');
is(WG::http_get("$g->{url}/slowk?ms=1")->{status}, 200, 'a request without the header is not counted');
close $k;

# a held request counts too, and its slot comes back when its client leaves
my $h1 = raw_send($port, '/cold/1');
ok(wait_until(sub { held('cold') == 1 }, 30), 'a request to a cold upstream is held');
is(WG::http_get("$g->{url}/cold/2", timeout => 10)->{status}, 503, 'a second one from the same client is over limit_conn');
close $h1;
ok(wait_until(sub { held('cold') == 0 }, 30), 'the held client leaves');
$r = WG::http_get("$g->{url}/cold/3", timeout => 60);
is($r->{status}, 200, 'its slot is free: the next request is held and answered once the upstream is up') or diag($r->{content});
is(metric($g, 'wakegate_limit_conn_rejected_total', 'zone="h"'), 1, '/metrics counts one rejection for the held case');

is(stop_proc($g->{pid}, 'TERM', 30), 0, 'the gateway exits 0 on SIGTERM');
done_testing;
