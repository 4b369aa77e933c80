#!/usr/bin/perl
# wakegate-worker's numbers for the gateway's scaling and recycling (issue
# 16): wakegate_worker_busy_ratio, the inference thread's busy fraction over
# the last 10 seconds, and --leak-per-request, a test-only flag that really
# leaks so that a recycling test sees a real leak.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);
use WG;
use WGWorker;

my $json = JSON::PP->new;
my $dir = tmpdir();
my $maker = ($ENV{WG_BUILD} // src('.')) . '/models/make-synthetic';
plan skip_all => "no $maker: build first" unless -x $maker;
my $example = slurp(src('models/example.json'));

# ---- the flag ----
{
	my ($code, $out) = run_worker('--help');
	like($out, qr/--leak-per-request BYTES/, '--help lists --leak-per-request');
	like(slurp(src('man/wakegate-worker.8')), qr/\\-\\-leak\\-per\\-request/, 'the man page lists it');
	like(slurp(src('man/wakegate-worker.8')), qr/wakegate_worker_busy_ratio/, 'and wakegate_worker_busy_ratio');
	($code, $out) = run_worker('--model', src('models/digits.safetensors'), '--listen', '127.0.0.1:1',
		'--leak-per-request', 'lots');
	is($code, 2, 'a bad --leak-per-request exits 2');
	like($out, qr/--leak-per-request: "lots" is not a size/, 'and says why');
}

# ---- --leak-per-request leaks for real ----
{
	my ($pid, $port, $log) = worker_ready('--leak-per-request', '1m');
	like(slurp($log), qr/\[warn\].*--leak-per-request 1048576: leaking/, 'the log warns that it leaks on purpose');
	my $rss0 = worker_metric($port, 'wakegate_worker_rss_bytes');
	my $ok = 0;
	$ok += http_post("http://127.0.0.1:$port/predict", $example)->{status} == 200 for 1 .. 30;
	is($ok, 30, '30 predictions are answered');
	my $rss1 = worker_metric($port, 'wakegate_worker_rss_bytes');
	cmp_ok($rss1 - $rss0, '>=', 28 * 2**20, sprintf('the RSS grows by about 30 MB (%.1f -> %.1f MB)', $rss0 / 2**20, $rss1 / 2**20));
	is(worker_metric($port, 'wakegate_worker_leaked_bytes'), 30 * 2**20, 'wakegate_worker_leaked_bytes says how much');
	is(stop_proc($pid), 0, 'a leaking worker still exits 0 on SIGTERM');
}
{
	my ($pid, $port) = worker_ready();
	http_post("http://127.0.0.1:$port/predict", $example) for 1 .. 5;
	is(worker_metric($port, 'wakegate_worker_leaked_bytes'), undef, 'without the flag nothing leaks and the metric is absent');
	stop_proc($pid);
}

# ---- wakegate_worker_busy_ratio ----
{
	my $model = "$dir/syn.safetensors";
	`$maker 16m $model`;
	my ($pid, $port) = worker_ready('--model', $model);
	my $url = "http://127.0.0.1:$port";
	my $body = $json->encode({ input => [ map { [ map { ($_ % 7) / 7 } 1 .. 64 ] } 1 .. 8 ] });
	sleep 1;
	cmp_ok(worker_metric($port, 'wakegate_worker_busy_ratio'), '<', 0.05, 'an idle worker is not busy');
	my $stop = "$dir/stop";
	my @kids;
	for (1 .. 3) {
		my $kid = fork // die;
		if (!$kid) {
			my $h = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
			$h->post("$url/predict", { content => $body, headers => { 'Content-Type' => 'application/json' } })
				until -e $stop;
			_exit(0);
		}
		push @kids, $kid;
	}
	sleep 3;
	my $busy = worker_metric($port, 'wakegate_worker_busy_ratio');
	spew($stop, '');
	waitpid($_, 0) for @kids;
	cmp_ok($busy, '>', 0.3, "under 3 looping clients the inference thread is busy ($busy)");
	cmp_ok($busy, '<=', 1, 'and the ratio is at most 1');
	my $total = worker_metric($port, 'wakegate_worker_busy_seconds_total');
	my $sum = worker_metric($port, 'wakegate_worker_inference_seconds_sum');
	cmp_ok(abs($total - $sum), '<', 1e-3, "wakegate_worker_busy_seconds_total is the batches' time ($total s)");
	ok(wait_until(sub { worker_metric($port, 'wakegate_worker_busy_ratio') < 0.05 }, 15),
		'10 seconds after the load stops, the ratio is back near 0');
	stop_proc($pid);
}

done_testing();
