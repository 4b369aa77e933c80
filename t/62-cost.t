# Cost accounting: the GPU seconds the gateway bills match the time the
# worker process lived (seen here through /proc), each run rounded up to
# billing_granularity; cost = seconds * price_per_hour / 3600; the saving
# against one replica always on is consistent; Redis keeps the sums.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use POSIX qw(ceil);
use Time::HiRes qw(time sleep);

my ($rport) = start_redis();
my ($body) = digits_input(1);

# Wall-clock time a process started, from /proc (clock ticks since boot).
sub proc_start {
	my ($pid) = @_;
	my $stat = slurp("/proc/$pid/stat") or return undef;
	$stat =~ /^\d+ \(.*\) (.*)$/s or return undef;
	my @f = split ' ', $1;
	my ($up) = split ' ', slurp('/proc/uptime');
	my $now = time;
	return $now - $up + $f[19] / 100;	# field 22: starttime
}

# Runs a cold start, a few requests and an idle stop; returns the seconds the worker lived.
sub one_run {
	my ($g) = @_;
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'the first request wakes the worker and is answered');
	my @kids = gw_children($g->{pid});
	ok(@kids >= 1, 'a worker process runs');
	my ($start) = sort { $a <=> $b } grep { defined } map { proc_start($_) } @kids;
	for (1 .. 3) { gw_predict($g, $body) }
	ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 30), 'the idle worker is stopped');
	my $end = time;
	ok(wait_until(sub { gw_status($g)->{upstreams}{digits}{state} eq 'STOPPED' }, 30), '/status shows STOPPED');
	return $end - $start;
}

sub metric {
	my ($g, $name, $labels) = @_;
	my $m = WG::http_get("$g->{admin_url}/metrics")->{content};
	return $m =~ /^\Q$name\E\{\Q$labels\E\} (\S+)$/m ? $1 : undef;
}

# --- billing_granularity 1s, price 2.5 EUR an hour
{
	my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 2s; stop_grace 2s; price_per_hour 2.5 EUR;',
		extra => "redis 127.0.0.1:$rport prefix=wgcost1:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $lived = one_run($g);
	sleep 1.2;	# the metrics are refreshed every second
	my $st = gw_status($g)->{upstreams}{digits};
	my $c = $st->{cost};
	diag(sprintf('worker lived %.2fs; gateway: %.2fs, billed %gs', $lived, $c->{gpu_seconds}, $c->{gpu_billed_seconds}));
	ok(abs($c->{gpu_seconds} - $lived) < 1, '/status GPU seconds match the time the worker lived, within 1s');
	is($c->{gpu_billed_seconds}, ceil($c->{gpu_seconds} - 1e-9), 'the run is billed rounded up to the second');
	is($c->{runs}, 1, 'one run is counted');
	is($c->{currency}, 'EUR', 'the currency is the conf\'s');
	ok(abs($c->{cost} - $c->{gpu_billed_seconds} * 2.5 / 3600) < 1e-9, 'cost is billed seconds times price per hour / 3600');
	ok($c->{always_on_seconds} >= $c->{gpu_billed_seconds}, 'always on would have billed at least as much');
	ok(abs($c->{always_on_cost} - $c->{always_on_seconds} * 2.5 / 3600) < 1e-9, 'the always-on cost uses the same price');
	ok(abs($c->{saving_ratio} - (1 - $c->{gpu_billed_seconds} / $c->{always_on_seconds})) < 1e-9,
		'the saving is 1 - billed / always-on');
	ok($c->{saving_ratio} > 0, 'scale to zero saved something');
	ok(abs($c->{saving_percent} - 100 * $c->{saving_ratio}) < 1e-9, 'the saving in percent is the ratio times 100');
	is($c->{cold_starts}, 1, 'one cold start is counted');
	ok(defined $c->{hold_p50_seconds} && $c->{hold_p50_seconds} > 0, 'the held first request gives a hold p50');
	ok($c->{hold_p99_seconds} >= $c->{hold_p50_seconds}, 'hold p99 is at least p50');
	is($st->{keepalive}{policy}, 'fixed', 'the keep-alive is fixed by default');
	is($st->{keepalive}{keepalive_seconds}, 2, 'the fixed keep-alive is idle_timeout');

	my $l = 'upstream="digits"';
	is(metric($g, 'wakegate_gpu_billed_seconds_total', $l), $c->{gpu_billed_seconds}, '/metrics shows the billed seconds');
	ok(abs(metric($g, 'wakegate_gpu_seconds_total', $l) - $lived) < 1, '/metrics GPU seconds match the worker\'s life, within 1s');
	ok(abs(metric($g, 'wakegate_cost_total', 'upstream="digits",currency="EUR"') - $c->{cost}) < 1e-6,
		'/metrics shows the cost with its currency');
	my ($ms, $mao) = (metric($g, 'wakegate_saving_ratio', $l), metric($g, 'wakegate_always_on_seconds', $l));
	ok(defined $ms && abs($ms - (1 - $c->{gpu_billed_seconds} / $mao)) < 1e-6, '/metrics saving ratio is consistent');
	ok(defined metric($g, 'wakegate_always_on_cost', 'upstream="digits",currency="EUR"'), '/metrics shows the always-on cost');
	ok(defined metric($g, 'wakegate_hold_quantile_seconds', 'upstream="digits",quantile="0.99"'), '/metrics shows hold p99');

	my %h = split /\n/, `redis-cli -p $rport HGETALL wgcost1:stats:digits`;
	is($h{gpu_billed_seconds}, $c->{gpu_billed_seconds}, 'Redis keeps the billed seconds');
	is($h{runs}, 1, 'Redis counts the run');
	ok(abs($h{cost} - $c->{cost}) < 1e-9, 'Redis keeps the cost');
	ok($h{since_ms} && abs($h{since_ms} / 1000 - time) < 120, 'Redis knows since when the upstream is accounted');
	like(gw_log($g), qr/replica 0: ran [\d.]+s, billed \d+s, cost [\d.]+ EUR/, 'the log says what the run cost');
	stop_proc($g->{pid});
}

# --- billing_granularity 1m: a run of a few seconds is billed a whole minute
{
	my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 1s; stop_grace 2s; price_per_hour 1.8;',
		extra => "redis 127.0.0.1:$rport prefix=wgcost2:; billing_granularity 1m;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $lived = one_run($g);
	my $c = gw_status($g)->{upstreams}{digits}{cost};
	ok(abs($c->{gpu_seconds} - $lived) < 1, 'GPU seconds still match the worker\'s life');
	is($c->{gpu_billed_seconds}, 60, 'with billing_granularity 1m the run is billed 60 seconds');
	ok(abs($c->{cost} - 60 * 1.8 / 3600) < 1e-9, 'and costs one minute at the hourly price');
	is($c->{currency}, 'USD', 'the default currency is USD');
	is($c->{always_on_seconds}, 60, 'the always-on replica is rounded the same way');
	stop_proc($g->{pid});
}

done_testing;
