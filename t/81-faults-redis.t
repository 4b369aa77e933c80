# Redis goes away under load and comes back; Redis stops answering (SIGSTOP).
# Requests keep being answered 200 throughout and never wait on Redis; a cold
# start with Redis stopped still happens; the activity Redis missed catches up
# once it answers again.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use Time::HiRes qw(time sleep);

plan skip_all => 'no redis-server/redis-cli' unless system('sh', '-c', 'command -v redis-server >/dev/null && command -v redis-cli >/dev/null') == 0;
my $dir = tmpdir();
my ($rport, $rpid) = start_redis();
sub rcli { my $o = `redis-cli -p $rport @_ 2>/dev/null`; chomp $o; return $o }
sub redis_up {
	my $p = start_proc(name => "redis-again-$rport", cmd => ['redis-server', '--port', $rport,
		'--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', $dir]);
	wait_until(sub { rcli('PING') eq 'PONG' }, 10) or die 'redis did not restart';
	return $p;
}

my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
	upstream => 'warmup off; idle_timeout 60s; stop_grace 1s;', extra => "redis 127.0.0.1:$rport;");
$text =~ s/(server \{)/upstream cold {\n\tlaunch exec "@{[backend_cmd() =~ s{"}{\\"}gr]}";\n\twarmup off;\n\tidle_timeout 60s;\n\tstop_grace 1s;\n}\n$1/ or die;
$text =~ s/(location \/ \{ proxy_pass digits; \})/$1\n\tlocation \/cold\/ { proxy_pass cold; }/ or die;
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
is(WG::http_get("$g->{url}/first", timeout => 30)->{status}, 200, 'the gateway serves with Redis up');
ok(wait_until(sub { rcli('ZSCORE wakegate:activity digits') =~ /^\d+/ }, 10), 'the activity is written to Redis');

# Runs $k clients for $secs seconds; returns a sub giving (sent, not-200, slowest seconds).
sub load {
	my ($k, $secs, $path) = @_;
	my @kids;
	for my $i (1 .. $k) {
		my $pid = fork // die;
		if ($pid == 0) {
			my ($n, $bad, $max) = (0, 0, 0);
			my $end = time + $secs;
			while (time < $end) {
				my $t0 = time;
				my $r = WG::http_get("$g->{url}$path", timeout => 30);
				my $dt = time - $t0;
				$max = $dt if $dt > $max;
				$n++;
				$bad++ if $r->{status} != 200;
				sleep 0.005;
			}
			spew("$dir/load-$$", "$n $bad $max");
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	return sub {
		my ($n, $bad, $max) = (0, 0, 0);
		for (@kids) {
			waitpid($_, 0);
			my ($a, $b, $c) = split ' ', slurp("$dir/load-$_");
			$n += $a // 0; $bad += $b // 1; $max = $c if ($c // 99) > $max;
		}
		return ($n, $bad, $max);
	};
}

# 1. Redis SIGKILLed under load, restarted on the same port 1.5s later
{
	my $done = load(4, 5, '/killed');
	sleep 1;
	stop_proc($rpid, 'KILL', 5);
	sleep 1.5;
	$rpid = redis_up();
	my ($n, $bad, $max) = $done->();
	ok($n > 20, "the clients sent $n requests while Redis died and came back");
	is($bad, 0, 'every one of them was answered 200');
	ok(wait_until(sub { rcli('ZSCORE wakegate:activity digits') =~ /^\d+/ }, 20),
		'the activity catches up in the new (empty) Redis');
	ok(wait_until(sub { rcli('HLEN wakegate:replica:digits') >= 1 }, 20), 'and so does the replica state');
	like(gw_log($g), qr/redis 127\.0\.0\.1:$rport: connection lost: .*serving from memory/, 'the log says Redis went away');
	like(gw_log($g), qr/redis 127\.0\.0\.1:$rport: connection back/, 'and that it came back');
}

# 2. Redis stopped (SIGSTOP) for 4s under load, and a cold start meanwhile
{
	my $before = rcli('ZSCORE wakegate:activity digits');
	sleep 1.1;	# activity is written at most once a second
	kill 'STOP', $rpid;
	my $t0 = time;
	my $done = load(4, 3, '/stopped');
	my $r = WG::http_get("$g->{url}/cold/wake", timeout => 30);
	is($r->{status}, 200, 'a cold upstream is woken and served while Redis does not answer');
	my ($n, $bad, $max) = $done->();
	my $stopped_for = time - $t0;
	kill 'CONT', $rpid;
	ok($n > 20, "the clients sent $n requests while Redis was stopped");
	is($bad, 0, 'every one of them was answered 200');
	ok($max < 2.5, sprintf('none waited on Redis: the slowest took %.2fs, Redis was stopped %.1fs', $max, $stopped_for));
	ok(wait_until(sub { my $v = rcli('ZSCORE wakegate:activity digits'); $v =~ /^\d+/ && $v > $before }, 20),
		'once Redis answers again the newer activity reaches it');
	ok(wait_until(sub { rcli('ZSCORE wakegate:activity cold') =~ /^\d+/ }, 20), 'and the cold upstream\'s activity too');
}

is(WG::http_get("$g->{url}/last", timeout => 30)->{status}, 200, 'the gateway still serves');
is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
done_testing;
