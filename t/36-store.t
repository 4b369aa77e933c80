# The shared state in Redis: keys and values, the newest activity across
# gateways, write throttling, and a gateway that keeps answering when Redis
# dies, pauses or was never there.
use strict;
use warnings;
use Test::More;
use IPC::Open2;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use WG;

my $build = $ENV{WG_BUILD} // src('');
my $bin = "$build/gateway/store-test";
plan skip_all => "no $bin: build it with make check" unless -x $bin;
plan skip_all => 'no redis-server' unless system('sh', '-c', 'command -v redis-server >/dev/null') == 0;

my @drivers;
$SIG{PIPE} = 'IGNORE';	# a driver that died fails its test, not the whole file

# A store-test process on its own loop, fed commands on stdin.
sub driver {
	my ($port, $prefix, %o) = @_;
	my $log = tmpdir() . '/store-test-' . (scalar(@drivers) + 1) . '.log';
	my @pre = $o{valgrind} ? ('valgrind', '-q', '--leak-check=full', '--show-leak-kinds=definite,indirect',
		'--errors-for-leak-kinds=definite,indirect', '--error-exitcode=99') : ();
	local $ENV{WG_STORE_LOG} = $log;
	my $pid = open2(my $out, my $in, 'sh', '-c', 'exec "$@" 2>>"$WG_STORE_LOG"', 'sh', @pre, $bin,
		$o{host} // '127.0.0.1', $port, $prefix);
	my $d = { pid => $pid, in => $in, out => $out, buf => '', log => $log };
	push @drivers, $d;
	return $d;
}

sub send_cmd { my ($d, @l) = @_; syswrite $d->{in}, join('', map { "$_\n" } @l) }

# The next line the driver prints, or undef after timeout seconds.
sub line {
	my ($d, $timeout) = @_;
	my $end = time + ($timeout // 30);
	while ($d->{buf} !~ /\n/) {
		my $left = $end - time;
		return undef if $left <= 0;
		next unless IO::Select->new($d->{out})->can_read($left);
		my $n = sysread($d->{out}, my $chunk, 4096);
		return undef unless $n;
		$d->{buf} .= $chunk;
	}
	$d->{buf} =~ s/^(.*?)\n//;
	return $1;
}

sub ask { my ($d, $cmd, $timeout) = @_; send_cmd($d, $cmd); return line($d, $timeout) }

# Ends the driver (EOF on stdin frees the store); returns its exit status.
sub finish {
	my ($d) = @_;
	close $d->{in};
	my $rest = '';
	while (defined(my $l = line($d, 30))) { $rest .= "$l\n" }
	my $end = time + 30;
	while (time < $end) {
		if (waitpid($d->{pid}, WNOHANG) == $d->{pid}) { $d->{done} = 1; return ($?, $rest) }
		sleep 0.05;
	}
	kill 'KILL', $d->{pid};
	waitpid($d->{pid}, 0);
	$d->{done} = 1;
	return (-1, $rest);
}

END { for my $d (@drivers) { next if $d->{done}; kill 'KILL', $d->{pid}; waitpid($d->{pid}, 0) } }

sub rcli {
	my ($port, @args) = @_;
	# redis-cli complains on stderr while Redis is down; the answer is what counts.
	open(my $fh, '-|', 'sh', '-c', 'exec redis-cli "$@" 2>/dev/null', 'sh', '-h', '127.0.0.1', '-p', $port, @args)
		or die "redis-cli: $!";
	local $/;
	my $r = <$fh> // '';
	close $fh;
	$r =~ s/\n\z//;
	return $r;
}

sub redis_on {
	my ($port) = @_;
	my $pid = start_proc(name => "redis-again-$port", cmd => ['redis-server', '--port', $port,
		'--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()]);
	wait_until(sub { rcli($port, 'PING') eq 'PONG' }, 30) or die "redis did not start again";
	return $pid;
}

sub count_in { my ($file, $re) = @_; my @m = slurp($file) =~ /$re/g; return scalar @m }

my ($port, $rpid) = start_redis();
my $p = "wgt$$:";

# Keys and values.
my $a = driver($port, $p);
is(ask($a, 'wait-connected'), 'connected 1', 'the store connects to Redis');
is(ask($a, 'activity digits 1700000000123'), 'ok', 'activity is recorded without waiting');
ok(wait_until(sub { rcli($port, 'ZSCORE', "${p}activity", 'digits') eq '1700000000123' }, 30),
	'the activity lands in the PREFIXactivity sorted set, scored in ms');
ask($a, 'state digits 0 READY http://127.0.0.1:9000');
ask($a, 'state digits 1 BOOTING');
ask($a, 'add digits gpu_seconds 1.5');
ask($a, 'add digits gpu_seconds 0.25');
ask($a, 'add digits cold_starts 1');
ok(wait_until(sub { rcli($port, 'HGET', "${p}stats:digits", 'cold_starts') eq '1' }, 30), 'stats are written');
is(rcli($port, 'HGET', "${p}replica:digits", '0'), 'READY http://127.0.0.1:9000',
	'a replica state is "STATE URL" under PREFIXreplica:UPSTREAM');
is(rcli($port, 'HGET', "${p}replica:digits", '1'), 'BOOTING', 'a replica without a URL is its state alone');
is(rcli($port, 'HGET', "${p}stats:digits", 'gpu_seconds'), '1.75', 'counters add up with HINCRBYFLOAT');
like(ask($a, 'newest digits'), qr/^newest digits 1700000000123 \d+$/, 'the newest activity reads back');
like(ask($a, 'newest nobody'), qr/^newest nobody -1 \d+$/, 'an upstream never seen answers -1');

# Two gateways on one Redis: the newest wins.
my $b = driver($port, $p);
is(ask($b, 'wait-connected'), 'connected 1', 'a second gateway connects');
ask($b, 'activity digits 1600000000000');
ask($b, 'activity other 1600000000000');
ok(wait_until(sub { rcli($port, 'ZSCORE', "${p}activity", 'other') eq '1600000000000' }, 30),
	'the second gateway writes');
is(rcli($port, 'ZSCORE', "${p}activity", 'digits'), '1700000000123', 'an older activity does not overwrite a newer one');
ask($b, 'activity digits 1700000000999');
ok(wait_until(sub { rcli($port, 'ZSCORE', "${p}activity", 'digits') eq '1700000000999' }, 30),
	'a newer activity from the other gateway wins');
like(ask($a, 'newest digits'), qr/^newest digits 1700000000999 /, 'each gateway sees the newest activity of all');
my ($st) = finish($b);
is($st, 0, 'the second gateway exits cleanly');

# Throttling: a burst of activity is one write now and one a second later.
rcli($port, 'CONFIG', 'RESETSTAT');
send_cmd($a, map { 'activity burst ' . (1700000100000 + $_) } 1 .. 50);
line($a) for 1 .. 50;
ok(wait_until(sub { rcli($port, 'ZSCORE', "${p}activity", 'burst') eq '1700000100050' }, 30),
	'the newest activity of a burst reaches Redis without another call');
my ($zadds) = rcli($port, 'INFO', 'commandstats') =~ /cmdstat_zadd:calls=(\d+)/;
ok($zadds >= 1 && $zadds <= 3, "50 activities in a burst are at most a few writes (got $zadds)");

# Redis dies mid-run, then comes back on the same port.
stop_proc($rpid);
is(ask($a, 'wait-disconnected'), 'connected 0', 'the store notices Redis is gone');
like(ask($a, 'newest digits'), qr/^newest digits -1 \d+$/, 'without Redis the newest activity answers -1');
ask($a, 'activity digits 1700000009999');
ask($a, 'add digits gpu_seconds 2');
ask($a, 'state digits 0 STOPPED');
$rpid = redis_on($port);
is(ask($a, 'wait-connected'), 'connected 1', 'the store reconnects when Redis returns on the same port');
ok(wait_until(sub { rcli($port, 'ZSCORE', "${p}activity", 'digits') eq '1700000009999' }, 30),
	'activity recorded while Redis was away reaches it on return');
ok(wait_until(sub { rcli($port, 'HGET', "${p}stats:digits", 'gpu_seconds') eq '2' }, 30),
	'counters added while Redis was away are not lost');
is(rcli($port, 'HGET', "${p}replica:digits", '0'), 'STOPPED', 'replica states are written again on return');
like(ask($a, 'newest digits'), qr/^newest digits 1700000009999 /, 'reads work again after the return');
is(count_in($a->{log}, qr/connection lost: [^\n]*serving from memory/), 1, 'the loss is logged once');
is(count_in($a->{log}, qr/connection back/), 1, 'the return is logged once');

# Redis paused: calls answer -1 after the timeout instead of hanging.
kill 'STOP', $rpid;
my $t0 = time;
my $r = ask($a, 'newest digits');
like($r, qr/^newest digits -1 \d+$/, 'with Redis paused the newest activity answers -1');
my ($ms) = ($r // '') =~ / (\d+)$/;
ok(defined $ms && $ms < 10000, 'and it answers within its timeout, not when Redis wakes');
send_cmd($a, 'newest-nowait digits', 'newest-nowait digits', 'newest-nowait digits');
my @got = map { line($a) } 1 .. 6;
is(scalar(grep { defined && /^newest digits -1 / } @got), 3, 'every pending call is answered once');
ask($a, 'activity digits 1700000011111');
kill 'CONT', $rpid;
is(ask($a, 'wait-connected'), 'connected 1', 'the store is connected after Redis resumes');
ok(wait_until(sub { rcli($port, 'ZSCORE', "${p}activity", 'digits') eq '1700000011111' }, 30),
	'activity recorded during the pause reaches Redis after it');
($st, my $rest) = finish($a);
is($st, 0, 'the gateway exits cleanly');
unlike(slurp($a->{log}) . $rest, qr/DOUBLE ANSWER/, 'no call was answered twice');

# A cancelled call is never answered, whether Redis answers or not.
my $k = driver($port, $p);
is(ask($k, 'wait-connected'), 'connected 1', 'a gateway connects to cancel a call');
is(ask($k, 'newest-cancel digits'), 'cancelled', 'a pending call is cancelled');
kill 'STOP', $rpid;
is(ask($k, 'newest-cancel digits'), 'cancelled', 'a call pending on a paused Redis is cancelled');
is(ask($k, 'sleep 1500'), 'slept', 'the cancelled calls time out meanwhile');
kill 'CONT', $rpid;
($st, $rest) = finish($k);
is($st, 0, 'the gateway with cancelled calls exits cleanly');
is($rest, '', 'a cancelled call is never answered, not even when the store is freed');

# Freeing the store with calls pending answers them, once, and exits cleanly.
my $c = driver($port, $p);
is(ask($c, 'wait-connected'), 'connected 1', 'a third gateway connects');
kill 'STOP', $rpid;
send_cmd($c, 'newest-nowait digits', 'newest-nowait digits');
is(line($c), 'sent', 'a call is pending');
is(line($c), 'sent', 'a second call is pending');
($st, $rest) = finish($c);
kill 'CONT', $rpid;
is($st, 0, 'the store is freed with calls pending without a crash');
is(scalar(() = $rest =~ /^newest digits -1 \d+$/mg), 2, 'each pending call is answered -1 exactly once');

# No Redis at all.
my $none = free_port();
my $d = driver($none, $p);
$t0 = time;
like(ask($d, 'newest digits'), qr/^newest digits -1 \d+$/, 'with no Redis listening the newest activity answers -1');
ok(time - $t0 < 10, 'and answers at once');
is(ask($d, 'activity digits 1'), 'ok', 'activity is accepted with no Redis');
is(ask($d, 'add digits requests 1'), 'ok', 'counters are accepted with no Redis');
is(ask($d, 'state digits 0 READY http://x'), 'ok', 'replica states are accepted with no Redis');
is(ask($d, 'sleep 1000'), 'slept', 'the store keeps retrying in the background');
is(ask($d, 'connected'), 'connected 0', 'and says it is not connected');
($st) = finish($d);
is($st, 0, 'a gateway with no Redis exits cleanly');
is(count_in($d->{log}, qr/cannot connect/), 1, 'the failed connection is logged once, not at every retry');

my $e = driver(0, $p, host => '-');
like(ask($e, 'newest digits'), qr/^newest digits -1 \d+$/, 'a store without Redis configured answers -1');
is(ask($e, 'connected'), 'connected 0', 'a store without Redis configured is never connected');
($st) = finish($e);
is($st, 0, 'a store without Redis configured exits cleanly');
is(slurp($e->{log}), '', 'a store without Redis configured logs nothing');

# Under valgrind: connect, write, lose Redis, reconnect, free with a call pending.
SKIP: {
	skip 'valgrind not installed', 4 unless system('sh', '-c', 'command -v valgrind >/dev/null') == 0;
	skip 'built with sanitizers: valgrind cannot run it', 4 if slurp($bin) =~ /__asan_init/;
	my $v = driver($port, $p, valgrind => 1);
	is(ask($v, 'wait-connected', 60), 'connected 1', 'under valgrind the store connects');
	send_cmd($v, 'activity digits 1700000022222', 'state digits 0 READY http://x',
		'add digits gpu_seconds 1', 'newest digits', 'activity digits 1700000022223');
	line($v, 60) for 1 .. 5;
	stop_proc($rpid);
	is(ask($v, 'wait-disconnected', 60), 'connected 0', 'under valgrind the store sees Redis go');
	ask($v, 'add digits gpu_seconds 1', 60);
	$rpid = redis_on($port);
	is(ask($v, 'wait-connected', 60), 'connected 1', 'under valgrind the store reconnects');
	send_cmd($v, 'newest-nowait digits');
	($st, $rest) = finish($v);
	is($st, 0, 'under valgrind there are no leaks or memory errors') or diag(slurp($v->{log}));
}

stop_proc($rpid);
done_testing();
