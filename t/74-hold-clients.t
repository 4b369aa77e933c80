# What held clients get (issue 17): deadlines (X-Wakegate-Max-Wait, hold
# max_wait=), priorities in the hold queue (and no starvation of a low one
# past half its hold timeout), and boot_cancel on and off.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $keys = "$dir/keys";
spew($keys, "key-mid-000001 mid priority=5\n");
my $port = free_port();
my $admin = free_port();
my $log = "$dir/slow.log";
my $b2 = backend_cmd(boot => 2, log => $log);
my $b3 = backend_cmd(boot => 3);
my $slog = "$dir/starve.log";
my $b0 = backend_cmd(log => $slog);
my $text = <<"EOC";
daemon off;
pid $dir/wakegate-$port.pid;
error_log $dir/error-$port.log info;
access_log $dir/access-$port.log;
admin_listen 127.0.0.1:$admin;
auth_keys $keys;
upstream dl { launch exec "$b3"; warmup off; idle_timeout 1s; stop_grace 1s; }
upstream dlx { launch exec "$b3"; warmup off; idle_timeout 1s; stop_grace 1s; hold 100 timeout=60s max_wait=1s; }
upstream pq { launch exec "$b2"; warmup off; idle_timeout 30s; max_conns 1; hold 100 timeout=60s; }
upstream bc_on { launch exec "$b3"; warmup off; idle_timeout 30s; boot_cancel on; }
upstream bc_off { launch exec "$b3"; warmup off; idle_timeout 30s; }
upstream st { launch exec "$b0"; warmup off; idle_timeout 60s; max_conns 1; hold 100 timeout=4s; }
server {
	listen 127.0.0.1:$port;
	location /dl/ { proxy_pass dl; }
	location /dlx/ { proxy_pass dlx; }
	location /lo/ { proxy_pass pq; }
	location /hi/ { proxy_pass pq; priority 10; }
	location /on/ { proxy_pass bc_on; }
	location /off/ { proxy_pass bc_off; }
	location /st/ { proxy_pass st; }
	location /sthi/ { proxy_pass st; priority 10; }
}
EOC
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
my $url = $g->{url};
my $state = sub { gw_status($g)->{upstreams}{$_[0]}{state} // '' };
my $metrics = sub { WG::http_get("$g->{admin_url}/metrics")->{content} };

# --- deadlines
my $r = WG::http_get("$url/dl/x", timeout => 60);
is($r->{status}, 200, 'a first cold request measures the 3s boot');
ok(wait_until(sub { $state->('dl') eq 'STOPPED' }, 30), 'the replica stops when idle');
my $t0 = time;
$r = WG::http_get("$url/dl/x", headers => { 'X-Wakegate-Max-Wait' => '1s' }, timeout => 60);
my $took = time - $t0;
is($r->{status}, 503, 'X-Wakegate-Max-Wait shorter than the measured boot: 503');
ok($took < 1, sprintf('at once (%.2fs), not after a hold', $took));
ok(($r->{headers}{'retry-after'} // 0) >= 2, 'with a Retry-After of the predicted wait (' . ($r->{headers}{'retry-after'} // '-') . ')');
like($r->{content}, qr/max wait/, 'the body says why');
ok(wait_until(sub { $state->('dl') eq 'STOPPED' }, 30), 'the wake it made ends idle again');
$r = WG::http_get("$url/dl/x", headers => { 'X-Wakegate-Max-Wait' => '20s' }, timeout => 60);
is($r->{status}, 200, 'a deadline longer than the boot is held and served');
ok(defined $r->{headers}{'x-wakegate-cold'}, 'through a cold start');
is(WG::http_get("$url/dl/x", headers => { 'X-Wakegate-Max-Wait' => 'soon' })->{status}, 400, 'a max wait that is not a time: 400');
# hold max_wait= as the default; nothing measured yet, so it is held and expires
$t0 = time;
$r = WG::http_get("$url/dlx/x", timeout => 60);
$took = time - $t0;
is($r->{status}, 503, 'hold max_wait=1s with a 3s boot: 503');
ok($took >= 0.9 && $took < 2.5, sprintf('when the max wait passed in the hold (%.2fs)', $took));
my $m = $metrics->();
like($m, qr/^wakegate_deadline_refused_total\{upstream="dl",reason="predicted"\} 1$/m, 'counted as predicted');
like($m, qr/^wakegate_deadline_refused_total\{upstream="dlx",reason="expired"\} 1$/m, 'counted as expired');

# --- priorities: a queue of mixed priorities held through a 2s boot, one slot
my @order = (['lo', 'lo1', {}], ['hi', 'hi1', {}], ['lo', 'mid1', { 'X-Api-Key' => 'key-mid-000001' }],
	['lo', 'lo2', {}], ['hi', 'hi2', {}]);
my @kids;
for my $o (@order) {
	my ($loc, $id, $h) = @$o;
	my $pid = fork // die;
	if (!$pid) {
		my $x = WG::http_get("$url/$loc/slow?ms=150&id=$id", headers => $h, timeout => 60);
		POSIX::_exit($x->{status} == 200 ? 0 : 1);
	}
	push @kids, $pid;
	sleep 0.15;	# arrival order
}
my $ok = 0;
for (@kids) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 5, 'five held requests of mixed priority are answered');
my @started = map { /^start (\S+)/ ? $1 : () } split /\n/, slurp($log);
is_deeply(\@started, [qw(hi1 hi2 mid1 lo1 lo2)],
	'dispatched highest priority first (location 10, tenant 5, 0), oldest first within one');

# --- no starvation: a low-priority request under a steady stream of high
# ones goes first once it waited half its hold timeout (2s of 4s); without
# that it would wait for all eight (1.5s + 8 x 0.4s > 4s) and get 503
is(WG::http_get("$url/st/x", timeout => 60)->{status}, 200, 'the one-slot upstream is warm');
my $fetch = sub {
	my ($path) = @_;
	my $pid = fork // die;
	if (!$pid) {
		my $x = WG::http_get("$url$path", timeout => 60);
		POSIX::_exit($x->{status} == 200 ? 0 : 1);
	}
	return $pid;
};
my @hi = ($fetch->('/sthi/slow?ms=1500&id=h0'));
sleep 0.2;
my $low = $fetch->('/st/slow?ms=100&id=low');
for my $i (1 .. 8) {
	sleep 0.3;
	push @hi, $fetch->("/sthi/slow?ms=400&id=h$i");
}
waitpid($low, 0);
is($?, 0, 'the low-priority request is answered 200 within its hold timeout');
waitpid($_, 0) for @hi;
my @st = map { /^start (\S+)/ ? $1 : () } split /\n/, slurp($slog);
my %at;
@at{@st} = (0 .. $#st);
ok(defined $at{low} && defined $at{h8} && $at{low} < $at{h8}, "it went before later high-priority ones (@st)");

# --- boot_cancel: the only held client leaves during the boot
WG::http_get("$url/on/x", timeout => 1);	# gives up after 1s
WG::http_get("$url/off/x", timeout => 1);
ok(wait_until(sub { $state->('bc_on') eq 'STOPPED' }, 3), 'boot_cancel on: the boot nobody waits for is stopped before it ends');
like(gw_log($g), qr/upstream "bc_on" replica 0: BOOTING -> DRAINING \(every held request left\) cause=boot_cancel/,
	'the log names the cause');
like($metrics->(), qr/^wakegate_boot_cancelled_total\{upstream="bc_on"\} 1$/m, 'and it is counted');
ok(wait_until(sub { $state->('bc_off') eq 'READY' }, 10), 'boot_cancel off: the boot runs on to READY');
unlike($metrics->(), qr/^wakegate_boot_cancelled_total\{upstream="bc_off"\}/m, 'and nothing is counted for it');
$r = WG::http_get("$url/on/x", timeout => 60);
is($r->{status}, 200, 'a request after the cancel starts a new boot and is served');
is(gw_status($g)->{upstreams}{bc_on}{cold_starts}, 2, 'two cold starts: the cancelled one and the new one');

is(fault_gw_stop($g), 0, 'the gateway exits 0 on SIGTERM (with WG_VALGRIND=1: no leak, no error)');
done_testing;
