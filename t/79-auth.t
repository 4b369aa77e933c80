# API keys and tenants (auth_keys, auth, auth_forward, $tenant): 401 without
# or with a wrong key, 200 with a right one, the key kept from the backend,
# limit_req by tenant, the tenant in the access log and in /metrics and
# /status, and the tenants' GPU-seconds summing to the replica's run time.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $keys = "$dir/keys";
spew($keys, "# key tenant [priority=N]\nkey-alpha-0001 alpha\n\nkey-beta-00002 beta priority=5  # a comment\n");

my $port = free_port();
my $admin = free_port();
my $launch = backend_cmd();
sub conf_text {
	my ($extra) = @_;
	return <<"EOC";
daemon off;
pid $dir/wakegate-$port.pid;
error_log $dir/error-$port.log info;
access_log $dir/access-$port.log;
admin_listen 127.0.0.1:$admin;
auth_keys $keys;
limit_req_zone \$tenant zone=per_tenant:1m rate=60r/m;
$extra
upstream digits {
	launch exec "$launch";
	warmup off;
	idle_timeout 2s;
	stop_grace 1s;
}
server {
	listen 127.0.0.1:$port;
	location /open { proxy_pass digits; }
	location /fwd { proxy_pass digits; auth required; auth_forward on; }
	location /limited { proxy_pass digits; auth required; limit_req zone=per_tenant burst=2 nodelay; }
	location / { proxy_pass digits; auth required; }
}
EOC
}
my $g = fault_gw_start(conf => conf_text(''), port => $port, admin => $admin);
my $url = $g->{url};

# 401: missing, wrong, and the same answer for both
my $r = WG::http_get("$url/headers");
is($r->{status}, 401, 'no key: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer realm="wakegate"/, 'with WWW-Authenticate: Bearer');
my $err = eval { decode_json($r->{content}) } // {};
ok(defined $err->{error}, 'and a JSON error body');
my $r2 = WG::http_get("$url/headers", headers => { Authorization => 'Bearer key-alpha-0002' });
is($r2->{status}, 401, 'a wrong Bearer key: 401');
is($r2->{content}, $r->{content}, 'the same body as no key: nothing tells which keys exist');
unlike($r2->{content}, qr/alpha|beta|key-/, 'the body names no key or tenant');
is(WG::http_get("$url/headers", headers => { 'X-Api-Key' => 'nope-nope-nope' })->{status}, 401, 'a wrong X-Api-Key: 401');
is(scalar(gw_children($g->{pid})), 0, 'refused requests woke nothing');

# 200 with a right key; the key is not forwarded unless auth_forward on
$r = WG::http_get("$url/headers", headers => { Authorization => 'Bearer key-alpha-0001' }, timeout => 60);
is($r->{status}, 200, 'the right Bearer key: 200');
unlike($r->{content}, qr/^authorization:/mi, 'the Authorization header is not forwarded upstream');
$r = WG::http_get("$url/headers", headers => { 'X-Api-Key' => 'key-beta-00002' });
is($r->{status}, 200, 'the right X-Api-Key: 200');
unlike($r->{content}, qr/^x-api-key:/mi, 'X-Api-Key is not forwarded upstream');
$r = WG::http_get("$url/fwd/headers", headers => { 'X-Api-Key' => 'key-beta-00002' });
is($r->{status}, 200, 'auth_forward on: 200');
like($r->{content}, qr/^x-api-key: key-beta-00002/mi, 'auth_forward on: the key goes upstream');
is(WG::http_get("$url/open/x")->{status}, 200, 'auth off (the default): no key needed');

# limit_req keyed by $tenant: alpha's burst does not touch beta's
my %code;
for my $i (1 .. 6) {
	my $c = WG::http_get("$url/limited/a$i", headers => { 'X-Api-Key' => 'key-alpha-0001' })->{status};
	$code{alpha}{$c}++;
}
for my $i (1 .. 2) {
	my $c = WG::http_get("$url/limited/b$i", headers => { 'X-Api-Key' => 'key-beta-00002' })->{status};
	$code{beta}{$c}++;
}
is($code{alpha}{200}, 3, 'limit_req by $tenant: alpha gets rate + burst (3) answers ...');
is($code{alpha}{503}, 3, '... and 503 past them');
is($code{beta}{200}, 2, 'beta, a different tenant, is not limited by alpha\'s burst');

# access log and metrics by tenant
my $acc = slurp($g->{access});
like($acc, qr/"GET \/headers HTTP\/1.1" 200 .* tenant=alpha$/m, 'the access log names the tenant');
like($acc, qr/"GET \/open\/x HTTP\/1.1" 200 .*rid=\S+$/m, 'a request without a key has no tenant= field');
my $m = WG::http_get("$g->{admin_url}/metrics")->{content};
like($m, qr/^wakegate_tenant_requests_total\{tenant="alpha",code="200"\} 4$/m, '/metrics: alpha\'s 200s');
like($m, qr/^wakegate_tenant_requests_total\{tenant="alpha",code="503"\} 3$/m, '/metrics: alpha\'s limited requests');
like($m, qr/^wakegate_tenant_requests_total\{tenant="beta",code="200"\} 4$/m, '/metrics: beta\'s 200s');
like($m, qr/^wakegate_auth_refused_total\{reason="missing_key"\} 1$/m, '/metrics: refusals for a missing key');
like($m, qr/^wakegate_auth_refused_total\{reason="invalid_key"\} 2$/m, '/metrics: refusals for a wrong key');

# GPU-seconds: the run is shared among alpha and beta; the sum is the run time
my $slow = sub {
	my ($key, $ms) = @_;
	my $pid = fork // die;
	if (!$pid) {
		my $x = WG::http_get("$url/slow?ms=$ms&id=1", headers => { 'X-Api-Key' => $key }, timeout => 30);
		POSIX::_exit($x->{status} == 200 ? 0 : 1);
	}
	return $pid;
};
my @p = ($slow->('key-alpha-0001', 2000), $slow->('key-beta-00002', 500));
my $ok = 0;
for (@p) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 2, 'two slow requests (alpha 2s, beta 0.5s) answered');
ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 30), 'the replica stops once idle');
my ($run, %gpu);
ok(wait_until(sub {
	$m = WG::http_get("$g->{admin_url}/metrics")->{content};
	%gpu = $m =~ /^wakegate_tenant_gpu_seconds_total\{tenant="([^"]+)",upstream="digits"\} (\S+)$/mg;
	($run) = $m =~ /^wakegate_gpu_seconds_total\{upstream="digits"\} (\S+)$/m;
	$run && keys %gpu >= 2;
}, 10), '/metrics has the tenants\' GPU-seconds once the run ended');
my $sum = 0;
$sum += $_ for values %gpu;
ok(abs($sum - $run) < 1, "the tenants' GPU-seconds ($sum) sum to the replica's run time ($run) within a second");
ok($gpu{alpha} > $gpu{beta}, 'alpha, longer in flight, got the larger share');
my $st = gw_status($g)->{tenants} // {};
ok(($st->{alpha}{requests} // 0) == 8 && abs(($st->{alpha}{gpu_seconds} // 0) - $gpu{alpha}) < 0.01,
	'/status shows the tenant\'s requests and GPU-seconds');

# a bad key file line is named by FILE:LINE; SIGHUP re-reads the file
spew($keys, "key-alpha-0001 alpha\nkey-gamma-0003 gamma priority=high\n");
my $t = `'@{[bin('wakegate')]}' -t -p $dir -c $g->{conf} 2>&1`;
like($t, qr/\Q$keys\E:2/, 'wakegate -t names a bad auth_keys line by FILE:LINE');
unlike($t, qr/key-gamma/, 'and does not print the key');
spew($keys, "key-gamma-0003 gamma\n");
kill 'HUP', $g->{pid};
ok(wait_until(sub { WG::http_get("$url/x", headers => { 'X-Api-Key' => 'key-gamma-0003' }, timeout => 30)->{status} == 200 }, 20),
	'after SIGHUP a new key is accepted');
is(WG::http_get("$url/x", headers => { 'X-Api-Key' => 'key-alpha-0001' })->{status}, 401, 'and a removed key is refused');

is(fault_gw_stop($g), 0, 'the gateway exits 0 on SIGTERM (with WG_VALGRIND=1: no leak, no error)');
done_testing;
