# launch kubernetes ... service=: the gateway's other scaling rules act on
# the Deployment's count as they act on process replicas: scale_p99 asks for
# one pod more than are READY once the p99 stayed above its threshold,
# min_warm keeps a floor without any traffic, and scale_on reads the pods'
# own gauge. The API server is a STAND-IN
# (t/lib/fake-kube.pl); here its pods run t/lib/test-backend.pl (slow answers
# on demand).
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use FakeKube;
use JSON::PP;
use Time::HiRes qw(time sleep);

if (my $why = kube_skip_reason()) { plan skip_all => $why }

my $gauge = tmpdir() . '/gauge.prom';
spew($gauge, "wakegate_worker_busy_ratio 0.1\n");
my $k = kube_start(pods => 6, start_delay => 0.3,
	worker => [ 'perl', src('t/lib/test-backend.pl'), '$port', '--metrics', $gauge ]);
sub gateway {
	my ($ups) = @_;
	my ($text, $port, $admin) = gw_conf(upstream => "$ups warmup off; stop_grace 2s; hold 100 timeout=60s;");
	$text =~ s{launch exec "[^\n]*";}{launch kubernetes deployment=ml/digits service=digits api=$k->{api} token_file=$k->{token_file} ca=$k->{ca};} or die;
	return gw_start(conf => $text, port => $port, admin => $admin);
}
sub patches { return [ map { "$_->[0]:$_->[1]" } @{ kube_patches($k) } ] }
sub ready { my ($g) = @_; return scalar grep { $_->{state} eq 'READY' } @{ gw_status($g)->{upstreams}{digits}{replicas} } }

# 1. scale_p99: slow answers one at a time (concurrency 1, far below target_concurrency)
my $g = gateway('replicas min=1 max=2; target_concurrency 50; scale_p99 200ms for 1s; idle_timeout 60s; scale_down_cooldown 60s;');
ok(wait_until(sub { ready($g) == 1 }, 15), 'replicas min=1: one pod, READY, without traffic');
is_deeply(patches(), ['200:1'], 'after one PATCH to 1');
my $two = wait_until(sub { http_get("$g->{url}/slow?ms=400", timeout => 30)->{status} == 200 && @{ patches() } >= 2 }, 20);
ok($two, 'slow answers one at a time (p99 400ms > 200ms for 1s) make the gateway ask for one more pod');
is_deeply(patches(), ['200:1', '200:2'], 'the count goes 1 -> 2');
like(gw_log($g), qr/scale up: p99 \d+ms > 200ms for 1s, 1 ready, asking the Deployment for 2/, 'the log says why');
ok(wait_until(sub { ready($g) == 2 }, 15), 'and the second pod becomes a READY replica');
stop_proc($g->{pid}, 'TERM', 30);

# 2. min_warm: a floor with no traffic at all, kept past idle_timeout
my $n0 = @{ patches() };
my $h = gateway('replicas min=0 max=2; min_warm 1; idle_timeout 1s;');
ok(wait_until(sub { @{ patches() } > $n0 }, 10), 'a gateway with min_warm 1 PATCHes at start');
is(patches()->[-1], '200:1', 'to 1');
sleep 2.5;
is(scalar(@{ patches() }), $n0 + 1, 'and not to 0 after idle_timeout: min_warm is a floor');
is(ready($h), 1, 'its pod is READY');
stop_proc($h->{pid}, 'TERM', 30);

# 3. scale_on: the pods' own gauge (here a file each test-backend serves on /metrics)
$n0 = @{ patches() };
my $t0 = time;
my $o = gateway('replicas min=1 max=2; scale_on gpu_util > 50% for 1s every=200ms; idle_timeout 60s; '
	. 'scale_down_cooldown 1s;');
ok(wait_until(sub { ready($o) == 1 }, 15), 'replicas min=1: one pod READY');
sleep 1.5;
is(scalar(@{ patches() }), $n0 + (patches()->[$n0] eq '200:1' ? 1 : 0), 'a low reading (10%) asks for nothing more');
my $n1 = @{ patches() };
spew($gauge, "wakegate_worker_busy_ratio 0.9\n");
my $t1 = time;
ok(wait_until(sub { @{ patches() } > $n1 }, 10), 'a reading of 90% > 50% makes the gateway PATCH');
cmp_ok(time - $t1, '>=', 0.9, 'not before it stayed above for 1s');
is(patches()->[-1], '200:2', 'for one pod more than READY');
like(gw_log($o), qr/scale up: wakegate_worker_busy_ratio mean 0\.9 > 0\.5 for 1s over 1 ready/, 'the log says why');
ok(wait_until(sub { ready($o) == 2 }, 15), 'the second pod becomes READY');
sleep 2;
is(patches()->[-1], '200:2', 'while the mean stays high the count stays, past scale_down_cooldown');
stop_proc($o->{pid}, 'TERM', 30);

# 4. the API server refuses the PATCH (RBAC): held requests are answered 503 with its message at once
kube_scale($k, 0);
ok(wait_until(sub { !kube_pods($k) }, 15), '(the Deployment is at 0 and its pods are gone)');
spew("$k->{dir}/forbid", '');
my $f = gateway('replicas min=0 max=2; idle_timeout 1s;');
my $t2 = time;
my $r = http_get("$f->{url}/slow?ms=10", timeout => 60);
is($r->{status}, 503, 'a 403 on the PATCH gets the held request a 503');
cmp_ok(time - $t2, '<', 10, 'at once, not after the hold timeout');
like($r->{content}, qr/kubernetes: PATCH deployments\/ml\/digits\/scale: HTTP 403: deployments\.apps \\"digits\\" is forbidden/,
	'with the API server\'s message');
like(gw_log($f), qr/kubernetes: PATCH deployments\/ml\/digits\/scale to 1: HTTP 403: .*; again in 1s/, 'the log says it and when it asks again');
unlink "$k->{dir}/forbid";
stop_proc($f->{pid}, 'TERM', 30);

# 5. prewarm schedule: a busy stretch ahead (minute counts in Redis, as t/64) wants one pod before traffic
SKIP: {
	skip 'no redis-server', 4 unless system('redis-server --version >/dev/null 2>&1') == 0;
	my ($rport) = start_redis();
	my $now_min = int(time / 60);
	my $x = $now_min + 1;	# a busy stretch starts at the next minute, every day: the wake is due now
	system('redis-cli', '-p', $rport, 'HSET', 'wg123:minute:digits', map { ($x - $_ * 1440, 3, $x + 1 - $_ * 1440, 1) } 1 .. 5) == 0
		or die 'redis-cli';
	my $n2 = @{ patches() };
	my ($text, $port, $admin) = gw_conf(upstream => 'replicas min=0 max=2; prewarm schedule; idle_timeout 5m; '
		. 'warmup off; stop_grace 2s; hold 100 timeout=60s;', extra => "redis 127.0.0.1:$rport prefix=wg123:;");
	$text =~ s{launch exec "[^\n]*";}{launch kubernetes deployment=ml/digits service=digits api=$k->{api} token_file=$k->{token_file} ca=$k->{ca};} or die;
	my $p = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { @{ patches() } > $n2 }, 20), 'prewarm schedule: the gateway PATCHes with no request');
	is(patches()->[-1], '200:1', 'to 1 pod');
	like(gw_log($p), qr/pre-warm: one pod for \d+s \(schedule: a busy stretch starts at/, 'the log says the schedule wanted it');
	ok(wait_until(sub { ready($p) == 1 }, 15), 'and the pod is READY before any request');
	stop_proc($p->{pid}, 'TERM', 30);
}

stop_proc($k->{pid}, 'TERM', 10);
done_testing;
