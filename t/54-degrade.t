# Degradation rules in the running gateway: while the big upstream is cold
# a small warm one answers at once (and the big one is woken); a long queue
# is answered 503 with Retry-After; "for" keeps a rule from flapping.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGLimits;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $be = backend_cmd();
$be =~ s/"/\\"/g;
my $big_log = "$dir/big.log";
my $small_log = "$dir/small.log";
my $big = backend_cmd(log => $big_log);
my $small = backend_cmd(log => $small_log);
my ($text, $port, $admin) = gw_conf_text(
	upstreams => qq{upstream big { launch exec "sleep 2; $big"; warmup off; idle_timeout 60s; hold 10 timeout=30s; stop_grace 1s; }
upstream small { launch exec "$small"; warmup off; min_warm 1; idle_timeout 60s; }
upstream q { launch exec "$be"; warmup off; max_conns 1; hold 50 timeout=30s; idle_timeout 60s; }
upstream h { launch exec "$be"; warmup off; max_conns 1; hold 50 timeout=30s; idle_timeout 60s; }
upstream r { launch exec "$be"; warmup off; idle_timeout 60s; }
upstream p { launch exec "$be"; warmup off; idle_timeout 60s; }
upstream e { launch exec "$be"; warmup off; idle_timeout 60s; stop_grace 1s; }},
	locations => <<'EOL');
	location /slowq { proxy_pass q; degrade return 503 retry_after=5s when queue > 1; }
	location /slowh { proxy_pass h; degrade return 503 when queue > 0 for 2s; }
	location /rps { proxy_pass r; degrade return 429 when rps > 0.3; }
	location /slowp { proxy_pass p; degrade return 503 when p99 > 300ms; }
	location /d { proxy_pass e; degrade return 503 when error_rate > 40%; }
	location / { proxy_pass big; degrade to small when cold; }
EOL
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub st { return gw_status($g)->{upstreams}{$_[0]} // {} }

# --- cold: the small model answers while the big one boots
ok(wait_until(sub { (st('small')->{state} // '') eq 'READY' }, 30), 'the small upstream is kept warm (min_warm 1)');
is(st('big')->{state}, 'STOPPED', 'the big upstream is cold');
my $r = WG::http_get("$g->{url}/slow?ms=1&id=c1", timeout => 30);
my $big_state = st('big')->{state} // '';
is($r->{status}, 200, 'a request for the cold big upstream is answered');
is($r->{headers}{'x-wakegate-degraded'}, 'small cold', 'with X-Wakegate-Degraded: small cold');
like(slurp($small_log), qr/^start c1 /m, 'the small upstream answered it');
isnt($big_state, 'READY', 'it did not wait for the big upstream to boot');
like($big_state, qr/^(BOOTING|WARMING)$/, 'the degraded request woke the big upstream');
ok(scalar(gw_children($g->{pid})) >= 3, 'the big upstream\'s process runs beside the small one\'s');
ok(wait_until(sub { (st('big')->{state} // '') eq 'READY' }, 30), 'the big upstream becomes READY');
$r = WG::http_get("$g->{url}/slow?ms=1&id=c2", timeout => 30);
is($r->{status}, 200, 'once it is READY a request is answered');
ok(!exists $r->{headers}{'x-wakegate-degraded'}, 'without X-Wakegate-Degraded');
like(slurp($big_log), qr/^start c2 /m, 'by the big upstream');
is(metric($g, 'wakegate_degraded_total', 'location="/",to="small",reason="cold"'), 1, '/metrics counts one request degraded for cold');

# --- queue > 1: return 503 retry_after=5s
is(WG::http_get("$g->{url}/slowq?ms=1", timeout => 30)->{status}, 200, 'the queue upstream is up');
my $a = raw_send($port, '/slowq?ms=4000&id=a');
ok(wait_until(sub { (st('q')->{in_flight} // 0) == 1 }, 30), 'a slow request fills its one slot');
my @held = map { raw_send($port, "/slowq?ms=1&id=h$_") } 1 .. 2;
ok(wait_until(sub { (st('q')->{held} // 0) == 2 }, 30), 'two more wait: a queue of 2 is not over "queue > 1" until it is 2');
$r = WG::http_get("$g->{url}/slowq?ms=1&id=over", timeout => 10);
is($r->{status}, 503, 'with two waiting, the next request is answered 503 by the rule');
is($r->{headers}{'retry-after'}, 5, 'with Retry-After: 5 from retry_after=5s');
is($r->{headers}{'x-wakegate-degraded'}, '503 queue 2 > 1', 'and X-Wakegate-Degraded says why');
like(slurp($g->{access}), qr{"GET /slowq\?ms=1&id=over HTTP/1.1" 503 [1-9]\d* upstream=q }, 'the access log has the request the rule answered');
is(metric($g, 'wakegate_degraded_total', 'location="/slowq",code="503",reason="queue"'), 1, '/metrics counts it by code and condition');
my @bufs;
my @ans;
ok(wait_until(sub { $ans[$_] //= raw_answer($held[$_], \$bufs[$_]) for 0 .. 1; defined $ans[0] && defined $ans[1] }, 30),
	'the waiting requests are served when the slot frees');
is_deeply([map { $_->{status} } @ans], [200, 200], 'with 200');
close $a;

# --- for 2s: neither at once nor off at once
is(WG::http_get("$g->{url}/slowh?ms=1", timeout => 30)->{status}, 200, 'the hysteresis upstream is up');
my $hold_a = raw_send($port, '/slowh?ms=4000&id=a');
ok(wait_until(sub { (st('h')->{in_flight} // 0) == 1 }, 30), 'a slow request fills its slot');
my @q = (raw_send($port, '/slowh?ms=1&id=q0'));
ok(wait_until(sub { (st('h')->{held} // 0) == 1 }, 30), 'one request waits: the condition "queue > 0" holds');
my $t0 = time;
my ($t1, $first_degraded);
while (time - $t0 < 20) {
	my $s = raw_send($port, '/slowh?ms=1&id=p');
	my $buf;
	my $ans;
	wait_until(sub { $ans = raw_answer($s, \$buf) }, 0.3);
	if ($ans && $ans->{status} == 503) {
		($t1, $first_degraded) = (time, $ans);
		last;
	}
	push @q, $s;
}
ok($first_degraded, 'once the queue has lasted long enough, requests are degraded');
cmp_ok(scalar(@q), '>=', 2, 'requests that come before are held, not degraded');
cmp_ok(($t1 // 0) - $t0, '>=', 1.5, 'the rule applies only after its condition held for 2s');
like($first_degraded ? $first_degraded->{headers}{'x-wakegate-degraded'} : '', qr/^503 queue \d+ > 0$/, 'the header names the rule');
ok(wait_until(sub { my $s = st('h'); ($s->{held} // 1) == 0 && ($s->{in_flight} // 1) == 0 }, 30), 'the queue drains');
my $t2 = time;
my $t3;
while (time - $t2 < 20) {
	my $rr = WG::http_get("$g->{url}/slowh?ms=1&id=back", timeout => 10);
	if ($rr->{status} == 200) {
		ok(!exists $rr->{headers}{'x-wakegate-degraded'}, 'a request served as usual has no X-Wakegate-Degraded');
		$t3 = time;
		last;
	}
	sleep 0.1;
}
ok(defined $t3, 'after the queue drained, requests are served as usual again');
cmp_ok(($t3 // 0) - $t2, '>=', 1.5, 'but only once the condition has been false for about 2s (no flapping)');
close $_ for @q, $hold_a;

# --- rps, p99, error_rate: the signals fed from requests' start and end
my @rps = map { WG::http_get("$g->{url}/rps/$_", timeout => 30) } 1 .. 4;
is_deeply([map { $_->{status} } @rps], [200, 200, 200, 429], 'rps > 0.3: the fourth request in 10s is over 0.3/s and answered 429');
like($rps[3]{headers}{'x-wakegate-degraded'} // '', qr/^429 rps 0\.4\d* > 0\.3/, 'the header shows the rate');
is(WG::http_get("$g->{url}/slowp?ms=1", timeout => 30)->{status}, 200, 'p99 > 300ms: a fast request is served');
is(WG::http_get("$g->{url}/slowp?ms=600", timeout => 30)->{status}, 200, 'a slow one too (p99 was low when it came)');
$r = WG::http_get("$g->{url}/slowp?ms=1", timeout => 30);
is($r->{status}, 503, 'after a 600ms request the p99 is over 300ms: the next is answered 503');
like($r->{headers}{'x-wakegate-degraded'} // '', qr/^503 p99 \d+ms > 300ms$/, 'the header shows the p99');
is(WG::http_get("$g->{url}/dok", timeout => 30)->{status}, 200, 'error_rate > 40%: a good request');
is(WG::http_get("$g->{url}/die", timeout => 30)->{status}, 502, 'a request whose backend dies gets 502');
$r = WG::http_get("$g->{url}/dok", timeout => 30);
is($r->{status}, 503, 'with 1 of 2 failed (50%), the next request is answered by the rule');
like($r->{headers}{'x-wakegate-degraded'} // '', qr/^503 error_rate 50(\.0+)?% > 40%$/, 'the header shows the error rate');

is(stop_proc($g->{pid}, 'TERM', 30), 0, 'the gateway exits 0 on SIGTERM');
done_testing;
