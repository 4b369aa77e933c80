# The sleep ladder (wakegate.conf(5): sleep, sleep_api): an idle READY replica
# sleeps at level 1, then level 2, at their after= times, then idle_timeout
# stops its process; a request at any level wakes it through the backend's
# sleep API (vLLM's calls, in vLLM's order), held meanwhile like a cold start;
# a burst during a wake starts one wake; a failed wake stops the process and
# the next request starts a new one. The backend is t/lib/sleep-backend.pl, a
# stand-in that records every call it gets (the real worker's sleep API is
# tested in t/23-worker-sleep.t and through the gateway in t/69).
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;
use Time::HiRes qw(time sleep);
use POSIX ();

my $dir = tmpdir();

sub sleep_cmd {
	my ($log, %o) = @_;
	my $cmd = "exec perl " . src('t/lib/sleep-backend.pl') . ' $port --log ' . $log;
	$cmd .= ' --fail-wake 1' if $o{fail};
	return $cmd;
}
sub calls {
	my ($log) = @_;
	return map { (split / /, $_, 3)[2] } split /\n/, (slurp($log) // '');
}
sub get { my ($g, $path) = @_; return http_get("$g->{url}$path", timeout => 30) }
sub bin_path { return ($ENV{WG_BUILD} // src('.')) . "/$_[0]" }

# --- 1. the ladder on its timers, a wake at each level -------------------------------
my $log = "$dir/calls1.log";
my ($text, $port, $admin) = gw_conf(launch => sleep_cmd($log),
	upstream => 'warmup off; sleep level=1 after=1s; sleep level=2 after=2500ms; idle_timeout 5s; stop_grace 1s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub st { my $s = gw_status($g)->{upstreams}{digits} // {}; return $s->{replicas}[0] // {} }

my $r = get($g, '/a');
is($r->{status}, 200, 'the first request starts the backend and is answered');
my $t_done = time;
ok(wait_until(sub { (st()->{state} // '') eq 'ASLEEP1' }, 10), 'idle for its after= time, the replica sleeps at level 1');
my $t1 = time - $t_done;
cmp_ok($t1, '>=', 0.9, 'not before sleep level=1 after=1s');
cmp_ok($t1, '<', 2.4, 'and well before level 2 is due');
is_deeply([calls($log)], ['POST /sleep?level=1'], 'the backend got POST /sleep?level=1');
is(st()->{cause}, 'idle', '/status gives the cause of the move: idle');
ok(wait_until(sub { (st()->{state} // '') eq 'ASLEEP2' }, 10), 'then at level 2');
cmp_ok(time - $t_done, '>=', 2.4, 'not before sleep level=2 after=2500ms');
is_deeply([calls($log)], ['POST /sleep?level=1', 'POST /sleep?level=2'], 'the backend got POST /sleep?level=2');
my @pids = gw_children($g->{pid});
ok(scalar(@pids) >= 1, 'the process still runs while asleep');
ok(wait_until(sub { (st()->{state} // '') eq 'STOPPED' }, 10), 'idle_timeout stops the sleeping process');
cmp_ok(time - $t_done, '>=', 4.9, 'not before idle_timeout 5s');
ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 10), 'and it is gone');
like(gw_log($g), qr/READY -> ASLEEP1 \(idle for [\d.]+s\) cause=idle/, 'the log shows READY -> ASLEEP1 with its cause');
like(gw_log($g), qr/ASLEEP2 -> DRAINING \(idle for [\d.]+s\) cause=idle/, 'and the stop from level 2');

# a request at level 1: only /wake_up
unlink $log;
$r = get($g, '/b');
is($r->{status}, 200, 'a request after the stop starts it again');
ok(wait_until(sub { (st()->{state} // '') eq 'ASLEEP1' }, 10), 'asleep at level 1 again');
$r = get($g, '/c');
is($r->{status}, 200, 'a request at level 1 is answered');
like($r->{headers}{'x-wakegate-cold'} // '', qr/^[\d.]+s$/, 'with X-Wakegate-Cold: it waited for a wake');
is_deeply([calls($log)], ['POST /sleep?level=1', 'POST /wake_up'], 'a level-1 wake is POST /wake_up alone');
is(st()->{state}, 'READY', 'READY after the wake');

# a request at level 2: vLLM's three calls, in order; and a burst wakes it once
unlink $log;
ok(wait_until(sub { (st()->{state} // '') eq 'ASLEEP2' }, 10), 'asleep at level 2 again');
my @kids;
for my $i (1 .. 6) {
	my $pid = fork // die;
	if (!$pid) { my $x = get($g, "/burst$i"); POSIX::_exit($x->{status} == 200 ? 0 : 1) }
	push @kids, $pid;
}
my $ok = 0;
for (@kids) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 6, 'a burst of 6 requests at level 2 is answered, none lost') or diag(gw_log($g));
is_deeply([calls($log)], ['POST /sleep?level=1', 'POST /sleep?level=2', 'POST /wake_up',
	'POST /collective_rpc {"method":"reload_weights"}', 'POST /reset_prefix_cache '],
	'a level-2 wake is /wake_up, /collective_rpc reload_weights, /reset_prefix_cache, once for the burst');
my $s = gw_status($g)->{upstreams}{digits};
ok(defined $s->{wake_seconds}{1} && defined $s->{wake_seconds}{2}, '/status shows the measured wake of each level');
my $m = http_get("$g->{admin_url}/metrics")->{content};
like($m, qr/wakegate_replica_moves_total\{upstream="digits",from="READY",to="ASLEEP1",cause="idle"\} [1-9]/,
	'wakegate_replica_moves_total counts READY -> ASLEEP1 by idle');
like($m, qr/wakegate_wakes_total\{upstream="digits",level="2"\} 1\b/, 'wakegate_wakes_total counts the level-2 wake');
unlike(gw_log($g), qr/refused move/, 'no move outside the move table');

# the admin API puts it to sleep at a level now
my $a = http_post("$g->{admin_url}/upstreams/digits/sleep?level=1", '');
is($a->{status}, 202, 'POST /upstreams/NAME/sleep?level=1 is accepted');
ok(wait_until(sub { (st()->{state} // '') eq 'ASLEEP1' }, 5), 'and the replica sleeps at level 1');
is(st()->{cause}, 'admin', 'with the cause admin');

# --- 2. a wake that fails stops the process; the next request starts a new one ----------
my $log2 = "$dir/calls2.log";
my ($text2, $port2, $admin2) = gw_conf(launch => sleep_cmd($log2, fail => 1),
	upstream => 'warmup off; sleep level=1 after=500ms; idle_timeout 30s; stop_grace 1s;');
my $g2 = gw_start(conf => $text2, port => $port2, admin => $admin2);
sub st2 { my $s = gw_status($g2)->{upstreams}{digits} // {}; return $s->{replicas}[0] // {} }
is(get($g2, '/a')->{status}, 200, 'the first request is answered');
ok(wait_until(sub { (st2()->{state} // '') eq 'ASLEEP1' }, 10), 'it sleeps at level 1');
my ($old) = gw_children($g2->{pid});
$r = get($g2, '/b');
like(gw_log($g2), qr/WAKING -> FAILED \(wake from level 1 failed: POST \/wake_up: 500/,
	'a wake the backend refuses fails the replica, with the call and status in the log');
ok(wait_until(sub { !kill(0, $old) }, 10), 'the process that could not wake is stopped, never left in between');
is($r->{status}, 200, 'the held request is answered by a new process') or diag(gw_log($g2));

# --- 3. sleep_api triton: level 2 is unload, the wake is load ---------------------------
my $log3 = "$dir/calls3.log";
my ($text3, $port3, $admin3) = gw_conf(launch => sleep_cmd($log3),
	upstream => 'warmup off; sleep_api triton; sleep level=2 after=500ms; idle_timeout 30s;');
my $g3 = gw_start(conf => $text3, port => $port3, admin => $admin3);
is(get($g3, '/a')->{status}, 200, 'triton: the first request is answered');
ok(wait_until(sub { ((gw_status($g3)->{upstreams}{digits}{replicas} // [{}])->[0]{state} // '') eq 'ASLEEP2' }, 10),
	'triton: asleep at level 2');
is(get($g3, '/b')->{status}, 200, 'triton: a request wakes it');
is_deeply([calls($log3)], ['POST /v2/repository/models/digits/unload', 'POST /v2/repository/models/digits/load'],
	'sleep_api triton unloads, then loads the model');

# --- 4. the real worker's sleep API through the gateway ---------------------------------
# a 16 MB synthetic model, so that level 2's drop of the weights shows in the worker's RSS
my $synth = "$dir/synth16.safetensors";
system(bin_path('models/make-synthetic'), '16m', $synth) == 0 or die "make-synthetic failed";
my $wcmd = bin('wakegate-worker') . " --model $synth --listen 127.0.0.1:\$port --name synth";
my ($text4, $port4, $admin4) = gw_conf(launch => $wcmd, name => 'synth',
	upstream => 'sleep level=1 after=1s; sleep level=2 after=2500ms; idle_timeout 30s;');
my $g4 = gw_start(conf => $text4, port => $port4, admin => $admin4);
sub st4 { my $s = gw_status($g4)->{upstreams}{synth} // {}; return $s->{replicas}[0] // {} }
my $x = encode_json({ inputs => [{ name => 'input', shape => [1, 64], datatype => 'FP32', data => [map { ($_ % 7) / 7 } 0 .. 63] }] });
my $r0 = http_post("$g4->{url}/v2/models/synth/infer", $x, timeout => 60);
is($r0->{status}, 200, 'real worker: the first answer');
my $want = decode_json($r0->{content})->{outputs}[0]{data};
my $wurl = st4()->{url};
sub wmetric { my ($n) = @_; my $m = http_get("$wurl/metrics")->{content} // ''; return $m =~ /^$n (\S+)$/m ? $1 : undef }
my $rss_awake = wmetric('wakegate_worker_rss_bytes');
ok(wait_until(sub { (st4()->{state} // '') eq 'ASLEEP1' && (wmetric('wakegate_worker_sleep_level') // -1) == 1 }, 10),
	'real worker: the gateway put it to sleep at level 1, and the worker says so in its /metrics');
ok(wait_until(sub { (st4()->{state} // '') eq 'ASLEEP2' && (wmetric('wakegate_worker_sleep_level') // -1) == 2 }, 10),
	'then at level 2');
my $rss_l2 = wmetric('wakegate_worker_rss_bytes');
cmp_ok($rss_l2, '<', $rss_awake - 8 * 1024 * 1024, "its RSS dropped at level 2 ($rss_awake -> $rss_l2 bytes)");
my $r2 = http_post("$g4->{url}/v2/models/synth/infer", $x, timeout => 60);
is($r2->{status}, 200, 'real worker: a request at level 2 is answered');
ok(exists $r2->{headers}{'x-wakegate-cold'}, 'after a wake (X-Wakegate-Cold)');
is_deeply(decode_json($r2->{content})->{outputs}[0]{data}, $want, 'with the same answer as before it slept');
is(wmetric('wakegate_worker_sleep_level'), 0, 'the worker is awake again');
like(gw_log($g4), qr/WAKING -> WARMING \(woke from level 2 after [\d.]+s\) cause=sleep_api/,
	'the gateway warmed it up again after the wake');

done_testing;
