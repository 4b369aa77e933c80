# limit_req in the running gateway: a burst of requests from one client
# gives nginx's passed/delayed/rejected counts, computed here from the rule;
# nodelay and delay=N, per-key buckets, dry run, Retry-After, the log line,
# the metrics, a client that leaves while delayed, a reload during a delay.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGLimits;
use Time::HiRes qw(time sleep);

my $be = backend_cmd();
$be =~ s/"/\\"/g;
my ($text, $port, $admin) = gw_conf_text(
	main => <<'EOM',
limit_req_zone $binary_remote_addr zone=nd:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=dn:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=slow:1m rate=30r/m;
limit_req_zone $http_x_api_key zone=perkey:1m rate=1r/m;
limit_req_zone $binary_remote_addr zone=dry:1m rate=1r/m;
EOM
	upstreams => qq{upstream be { launch exec "$be"; warmup off; idle_timeout 60s; hold 100 timeout=30s; }},
	locations => <<'EOL');
	location /nodelay/ { proxy_pass be; limit_req zone=nd burst=3 nodelay; limit_req_status 429; }
	location /delay/ { proxy_pass be; limit_req zone=dn burst=5 delay=2; }
	location /slow/ { proxy_pass be; limit_req zone=slow burst=1; }
	location /key/ { proxy_pass be; limit_req zone=perkey burst=1 nodelay; }
	location /dry/ { proxy_pass be; limit_req zone=dry burst=1; limit_req_dry_run on; }
	location / { proxy_pass be; }
EOL
my $g = gw_start(conf => $text, port => $port, admin => $admin);
is(WG::http_get("$g->{url}/warm")->{status}, 200, 'an unlimited location is answered (the backend is up)');

sub counts {
	my ($zone, $extra) = @_;
	$extra //= '';
	return map { metric($g, 'wakegate_limit_req_total', qq{zone="$zone",result="$_"$extra}) } qw(passed delayed rejected);
}

# nodelay: burst+1 pass at once, the rest are rejected with limit_req_status
{
	my @want = bucket_counts(n => 7, burst => 3);
	my %got;
	my $r;
	for my $i (1 .. 7) {
		$r = WG::http_get("$g->{url}/nodelay/$i");
		$got{$r->{status}}++;
		last if $r->{status} == 429 && $got{429} == $want[2];
	}
	is($got{200} // 0, $want[0], "with burst=3 nodelay, $want[0] of 7 requests are answered at once");
	is($got{429} // 0, $want[2], "and $want[2] are rejected with limit_req_status 429");
	like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'a rejected request carries Retry-After');
	cmp_ok($r->{headers}{'retry-after'} // 0, '>=', 50, 'Retry-After is the time until the 1r/m bucket has room (about a minute)');
	like($r->{content}, qr/"error":\s*"limiting requests by zone \\"nd\\""/, 'the answer says which zone limited it, in JSON');
	is_deeply([counts('nd')], \@want, '/metrics counts passed, delayed and rejected for the zone');
	my @logged = slurp($g->{access}) =~ m{"GET /nodelay/\d+ HTTP/1.1" 429 [1-9]\d* upstream=be }g;	# the 429 body counted
	is(scalar(@logged), $want[2], 'the access log has a line for every rejected request, with its status and upstream');
	my ($ex) = gw_log($g) =~ /\[error\] .*limiting requests, excess: (\d+\.\d{3}) by zone "nd", client: 127\.0\.0\.1, server: _, request: "GET \/nodelay\/\d HTTP\/1\.1"/;
	ok(defined $ex, 'the error log says "limiting requests, excess: ... by zone" as nginx does');
	cmp_ok(abs(($ex // 0) - 4), '<', 0.1, 'the excess logged is the one that overflowed burst=3: 4 requests');
}

# delay=2: two excess requests pass at once, the next three wait, the rest are rejected
{
	my @want = bucket_counts(n => 8, burst => 5, delay => 2);
	is_deeply(\@want, [3, 3, 2], 'the rule says 3 passed, 3 delayed, 2 rejected for 8 requests with burst=5 delay=2');
	my @socks = map { raw_send($port, "/delay/$_") } 1 .. 8;
	ok(wait_until(sub { my @c = counts('dn'); $c[0] + $c[1] + $c[2] == 8 }, 30), 'all eight requests are checked');
	my (@bufs, @ans);
	ok(wait_until(sub {
		for my $i (0 .. 7) { $ans[$i] //= raw_answer($socks[$i], \$bufs[$i]) }
		(grep { defined } @ans) == $want[0] + $want[2];
	}, 30), 'the passed and rejected requests are answered at once');
	my %got;
	$got{$_->{status}}++ for grep { defined } @ans;
	is($got{200} // 0, $want[0], "$want[0] are answered 200");
	is($got{503} // 0, $want[2], "$want[2] are rejected with the default status 503");
	is((grep { !defined } @ans), $want[1], "$want[1] are still waiting out their delay");
	is_deeply([counts('dn')], \@want, '/metrics counts them as passed, delayed, rejected');
	like(gw_log($g), qr/\[warn\] .*delaying request, excess: [23]\.\d{3}, by zone "dn", client: 127\.0\.0\.1/,
		'a delay is logged one level below limit_req_log_level');
	close $socks[$_] for grep { !defined $ans[$_] } 0 .. 7;
	ok(wait_until(sub { (() = gw_log($g) =~ /a delayed client left/g) == $want[1] }, 30),
		'clients that leave while delayed are dropped');
	is(WG::http_get("$g->{url}/after-abort")->{status}, 200, 'and the gateway goes on serving');
}

# a delay that runs out: the request is forwarded, even across a reload
{
	my $t0 = time;
	is(WG::http_get("$g->{url}/slow/1")->{status}, 200, 'at 30r/m the first request passes');
	my $s = raw_send($port, '/slow/2');
	ok(wait_until(sub { (counts('slow'))[1] == 1 }, 30), 'the second one is delayed');
	my $r3 = WG::http_get("$g->{url}/slow/3");
	my $fast = time - $t0 < 1.9;	# the bucket leaks 1 request in 2s
	SKIP: {
		skip 'the machine was too slow to send three requests within 2s', 1 unless $fast;
		is($r3->{status}, 503, 'the third one overflows burst=1 and is rejected');
	}
	kill 'HUP', $g->{pid};
	ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 30), 'the gateway reloads meanwhile');
	like(gw_log($g), qr/limit zone "slow": kept across reload/, 'the zone is kept across the reload');
	my $buf;
	my $a;
	ok(wait_until(sub { $a = raw_answer($s, \$buf) }, 30), 'the delayed request is answered after its delay');
	is($a && $a->{status}, 200, 'with 200 from the backend');
	cmp_ok(time - $t0, '>=', 1.5, 'it waited about 1/rate (2s) in all');
}

# per-key buckets: $http_x_api_key
{
	my @a = map { WG::http_get("$g->{url}/key/a$_", headers => { 'X-Api-Key' => 'alice' })->{status} } 1 .. 3;
	my @b = map { WG::http_get("$g->{url}/key/b$_", headers => { 'x-api-key' => 'bob' })->{status} } 1 .. 2;
	my @n = map { WG::http_get("$g->{url}/key/n$_")->{status} } 1 .. 4;
	is_deeply(\@a, [200, 200, 503], 'key alice gets burst+1 requests, then is rejected');
	is_deeply(\@b, [200, 200], 'key bob has its own bucket');
	is_deeply(\@n, [200, 200, 200, 200], 'requests without the header (an empty key) are not limited');
}

# dry run: nothing rejected or delayed, everything counted
{
	my @want = bucket_counts(n => 5, burst => 1, delay => 0);
	my @st = map { WG::http_get("$g->{url}/dry/$_", timeout => 10)->{status} } 1 .. 5;
	is_deeply(\@st, [(200) x 5], 'in a dry run all five requests are answered at once');
	is_deeply([counts('dry', ',dry_run="on"')], \@want, 'and counted as they would have been, with dry_run="on"');
	like(gw_log($g), qr/limiting requests, dry run, excess: [12]\.\d{3} by zone "dry"/, 'the log says "dry run"');
}

is(stop_proc($g->{pid}, 'TERM', 30), 0, 'the gateway exits 0 on SIGTERM');
done_testing;
