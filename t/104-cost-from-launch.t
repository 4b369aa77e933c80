# GPU seconds count from each replica's launch to its exit
# (wakegate.conf(5), billing_granularity: "each run of a replica (from the
# moment the gateway launches it to the end of its process)"), not from
# the gateway's start: a gateway that sat idle before its first request, and
# a second run after an idle stop, bill only the time the worker lived (seen
# here through /proc). In t/62 the first request comes milliseconds after the
# gateway starts, inside its 1s tolerance.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $idle_before = 3;	# seconds the gateway waits before its first request

# Wall-clock time a process started, from /proc (clock ticks since boot).
sub proc_start {
	my ($pid) = @_;
	my $stat = slurp("/proc/$pid/stat") or return undef;
	$stat =~ /^\d+ \(.*\) (.*)$/s or return undef;
	my @f = split ' ', $1;
	my ($up) = split ' ', slurp('/proc/uptime');
	return time - $up + $f[19] / 100;	# field 22: starttime
}

my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
	upstream => 'warmup off; idle_timeout 1s; stop_grace 1s; price_per_hour 3.6;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub cost { return gw_status($g)->{upstreams}{digits}{cost} // {} }

# One cold start, a request, the idle stop; returns the seconds the worker lived.
sub one_run {
	my ($n) = @_;
	my $r = WG::http_get("$g->{url}/run$n", timeout => 60);
	is($r->{status}, 200, "run $n: a request wakes the backend");
	my ($start) = sort { $a <=> $b } grep { defined } map { proc_start($_) } gw_children($g->{pid});
	ok(defined $start, "run $n: its process runs");
	ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 30), "run $n: the idle backend is stopped");
	my $end = time;
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 30), "run $n: /status shows STOPPED");
	return $end - ($start // $end);
}

sleep $idle_before;
is(cost()->{gpu_seconds} // -1, 0, 'nothing is billed while no replica runs');
my $lived1 = one_run(1);
sleep 1.2;	# the sums are refreshed every second
my $c = cost();
diag(sprintf('run 1: worker lived %.2fs, gateway counts %.2fs', $lived1, $c->{gpu_seconds} // -1));
ok(abs(($c->{gpu_seconds} // -99) - $lived1) < 1, 'run 1: GPU seconds match the worker\'s life within 1s, not the gateway\'s');
cmp_ok($c->{gpu_seconds} // 99, '<', $lived1 + $idle_before - 1, 'the idle time before the first request is not billed');
my @ran = gw_log($g) =~ /replica 0: ran ([\d.]+)s, billed/g;
ok(@ran == 1 && abs($ran[0] - $lived1) < 1, 'the log names the run\'s own length');

sleep 1;
my $lived2 = one_run(2);
sleep 1.2;
$c = cost();
diag(sprintf('run 2: worker lived %.2fs, gateway counts %.2fs for both', $lived2, $c->{gpu_seconds} // -1));
ok(abs(($c->{gpu_seconds} // -99) - $lived1 - $lived2) < 1.5, 'two runs: GPU seconds are the sum of the two lives');
@ran = gw_log($g) =~ /replica 0: ran ([\d.]+)s, billed/g;
ok(@ran == 2 && abs($ran[1] - $lived2) < 1, 'the second run counts from its own launch');
is($c->{runs}, 2, 'two runs are counted');
ok(abs(($c->{cost} // -1) - ($c->{gpu_billed_seconds} // 0) * 3.6 / 3600) < 1e-9, 'the cost is the billed seconds at the price');

stop_proc($g->{pid});
done_testing;
