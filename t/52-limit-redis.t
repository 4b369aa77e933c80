# limit_req_zone ... redis: two gateways share one bucket through Redis;
# while Redis is away each falls back to its own bucket and says so once;
# when Redis returns the buckets are shared again.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGLimits;
use Time::HiRes qw(time sleep);

my ($rport, $rpid) = start_redis();
my $be = backend_cmd();
$be =~ s/"/\\"/g;
sub gw {
	my ($text, $port, $admin) = gw_conf_text(
		main => <<"EOM",
redis 127.0.0.1:$rport prefix=wg52r:;
limit_req_zone \$binary_remote_addr zone=shared:1m rate=1r/m redis;
limit_req_zone \$binary_remote_addr zone=sdelay:1m rate=30r/m redis;
EOM
		upstreams => qq{upstream be { launch exec "$be"; warmup off; idle_timeout 60s; }},
		locations => <<'EOL');
	location /s/ { proxy_pass be; limit_req zone=shared burst=2 nodelay; limit_req_status 429; }
	location /d/ { proxy_pass be; limit_req zone=sdelay burst=3 delay=1; }
	location / { proxy_pass be; }
EOL
	return gw_start(conf => $text, port => $port, admin => $admin);
}
my $g1 = gw();
my $g2 = gw();
for my $g ($g1, $g2) {
	ok(wait_until(sub { gw_log($g) =~ /limit_req: Redis at 127\.0\.0\.1:$rport connected/ }, 30),
		'each gateway connects to Redis for its shared zones');
	is(WG::http_get("$g->{url}/warm", timeout => 30)->{status}, 200, 'and serves');
}
sub get { my ($g, $p) = @_; return WG::http_get("$g->{url}$p", timeout => 30) }

my @st = (get($g1, '/s/1')->{status}, get($g1, '/s/2')->{status}, get($g2, '/s/3')->{status});
my $r = get($g2, '/s/4');
is_deeply(\@st, [200, 200, 200], 'burst=2 nodelay lets three requests through across both gateways');
is($r->{status}, 429, 'the fourth, on the second gateway, is rejected: the bucket is shared');
like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'with Retry-After');
is(get($g1, '/s/5')->{status}, 429, 'the first gateway sees the same full bucket');
is(metric($g1, 'wakegate_limit_req_total', 'zone="shared",result="passed"'), 2, 'the first gateway counts its two passed');
is(metric($g2, 'wakegate_limit_req_total', 'zone="shared",result="rejected"'), 1, 'the second counts its rejection');
my $keys = `redis-cli -p $rport --scan --pattern 'wg52r:limit:shared:*' 2>/dev/null`;
like($keys, qr/^wg52r:limit:shared:/m, 'the bucket is a key in Redis under the prefix');

# a shared delay: the third request (excess 2 > delay=1) waits about 2s, on the other gateway
is(get($g1, '/d/1')->{status}, 200, 'a delay zone: the first request passes');
is(get($g1, '/d/2')->{status}, 200, 'the second is within delay=1 and passes at once');
my $t0 = time;
$r = get($g2, '/d/3');
is($r->{status}, 200, 'the third, on the other gateway, is answered after its delay');
is(metric($g2, 'wakegate_limit_req_total', 'zone="sdelay",result="delayed"'), 1, 'and counted as delayed there');
cmp_ok(time - $t0, '>=', 0.5, 'it waited (the shared bucket was over delay=1)');

# Redis goes away: local buckets, said once
stop_proc($rpid);
ok(wait_until(sub { gw_log($g1) =~ /Redis at 127\.0\.0\.1:$rport is not reachable/ }, 30),
	'the gateway notices Redis is gone');
my @loc = map { get($g1, "/s/l$_")->{status} } 1 .. 4;
is_deeply(\@loc, [200, 200, 200, 429], 'it limits with its own bucket meanwhile (burst=2: three pass, then 429)');
my $n = () = gw_log($g1) =~ /is not reachable/g;
is($n, 1, 'and says so once, not per request');

# Redis returns on the same port: shared again
my $rpid2 = start_proc(name => "redis-again", cmd => ['redis-server', '--port', $rport, '--bind', '127.0.0.1',
	'--save', '', '--appendonly', 'no', '--dir', tmpdir()]);
ok(wait_until(sub { gw_log($g1) =~ /Redis at 127\.0\.0\.1:$rport is back/ && gw_log($g2) =~ /is back/ }, 30),
	'both gateways reconnect when Redis is back');
@st = (get($g2, '/s/b1')->{status}, get($g2, '/s/b2')->{status}, get($g1, '/s/b3')->{status}, get($g1, '/s/b4')->{status});
is_deeply(\@st, [200, 200, 200, 429], 'the (new, empty) Redis bucket is shared again');

for my $g ($g1, $g2) {
	is(stop_proc($g->{pid}, 'TERM', 30), 0, 'the gateway exits 0 on SIGTERM');
}
stop_proc($rpid2);
done_testing;
