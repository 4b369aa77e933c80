# How many replicas run: "min_warm N at HH:MM-HH:MM" keeps N warm inside a
# daily window only; "replicas min=N max=N" with "target_concurrency N" starts
# a second replica under concurrent load, routes to the least busy one, and
# lets the extra ones go once idle.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my $dir = tmpdir();

# HH:MM of local time now + min minutes (wrapping midnight).
sub hhmm {
	my ($min) = @_;
	my @t = localtime(time + 60 * $min);
	return sprintf('%02d:%02d', $t[2], $t[1]);
}

# Processes the gateway started itself (the backends; not their per-connection forks).
sub backends {
	my ($g) = @_;
	return grep { ((slurp("/proc/$_/stat") =~ /^\d+ \(.*\) \S (\d+)/)[0] // 0) == $g->{pid} } gw_children($g->{pid});
}

sub status { return gw_status($_[0])->{upstreams}{digits} // {} }
sub ready { return scalar grep { $_->{state} eq 'READY' } @{ status($_[0])->{replicas} // [] } }

# 1. min_warm with a window around now keeps one warm; a window later today does not
my $in = hhmm(-10) . '-' . hhmm(10);
my $out = hhmm(30) . '-' . hhmm(60);
my ($t1, $p1, $a1) = gw_conf(launch => backend_cmd(), upstream => "warmup off; min_warm 1 at $in; idle_timeout 2s; stop_grace 1s;");
my ($t2, $p2, $a2) = gw_conf(launch => backend_cmd(), upstream => "warmup off; min_warm 1 at $out; idle_timeout 2s; stop_grace 1s;");
my $gin = gw_start(conf => $t1, port => $p1, admin => $a1);
my $gout = gw_start(conf => $t2, port => $p2, admin => $a2);
ok(wait_until(sub { (status($gin)->{state} // '') eq 'READY' }, 30),
	"min_warm 1 at $in starts a replica with no request, inside its window");
like(gw_log($gin), qr/STOPPED -> BOOTING \(min_warm/, 'the log says min_warm woke it');
sleep 3;    # longer than idle_timeout: the window keeps it up
is(status($gin)->{state}, 'READY', 'inside the window it stays warm past idle_timeout');
is(status($gout)->{state}, 'STOPPED', "min_warm 1 at $out keeps nothing warm outside its window");
is(scalar(backends($gout)), 0, 'no backend runs outside the window');
my $r = http_get("$gout->{url}/hello", timeout => 60);
is($r->{status}, 200, 'outside the window a request still wakes it');
ok(wait_until(sub { (status($gout)->{state} // '') eq 'STOPPED' }, 30),
	'outside the window it stops after idle_timeout as usual');
stop_proc($gin->{pid});
stop_proc($gout->{pid});

# 2. replicas max=2, target_concurrency 1: a second replica under concurrent load
my ($t3, $p3, $a3) = gw_conf(launch => backend_cmd(),
	upstream => 'warmup off; replicas min=0 max=2; target_concurrency 1; idle_timeout 3s; stop_grace 1s;');
my $g = gw_start(conf => $t3, port => $p3, admin => $a3);

# GETs /slow from their own processes; returns the pids (each writes its status to a file).
my $n = 0;
sub slow_wave {
	my ($count, $ms) = @_;
	my @kids;
	for (1 .. $count) {
		my $id = $n++;
		my $pid = fork // die "fork: $!";
		if ($pid == 0) {
			my $x = http_get("$g->{url}/slow?ms=$ms&id=$id", timeout => 60);
			spew("$dir/slow-$id", $x->{status});
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	return @kids;
}

my @kids = slow_wave(4, 2500);
my $max_backends = 0;
ok(wait_until(sub { my $k = () = backends($g); $max_backends = $k if $k > $max_backends; ready($g) == 2 }, 30),
	'under 4 concurrent requests with target_concurrency 1 a second replica becomes READY');
like(gw_log($g), qr/starting replica 1/, 'the log says why it scaled up');
like(gw_log($g), qr/replica 1: STOPPED -> BOOTING \(scale up/, 'the second replica boots for the scale up');
$max_backends = scalar(backends($g)) if scalar(backends($g)) > $max_backends;
is($max_backends, 2, 'two backend processes run');
push @kids, slow_wave(4, 1000);
waitpid($_, 0) for @kids;
my @codes = map { slurp("$dir/slow-$_") } 0 .. $n - 1;
is_deeply(\@codes, [(200) x $n], 'every request under load is answered 200');
my %reps = map { $_ => 1 } (slurp($g->{access}) =~ /replica=(http:\S+)/g);
is(scalar(keys %reps), 2, 'both replicas got traffic (two replica URLs in the access log)');

ok(wait_until(sub { status($g)->{state} eq 'STOPPED' && ready($g) == 0 }, 40),
	'after idle_timeout without traffic every replica is stopped (min=0)');
ok(wait_until(sub { scalar(backends($g)) == 0 }, 10), 'no backend process is left');
stop_proc($g->{pid});

done_testing;
