#!/usr/bin/perl
# wakegate-worker's sleep API, vLLM's shapes (man wakegate-worker(8), SLEEP):
# POST /sleep?level=1|2, POST /wake_up, GET /is_sleeping, POST /collective_rpc
# reload_weights, POST /reset_prefix_cache; 503 while asleep; RSS drops on the
# CPU path; the same answers after a wake; a burst during sleeps and wakes
# loses nothing. Runs a synthetic model of about 16 MB (models/make-synthetic).
use strict;
use warnings;
use Test::More;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);
use WG;
use WGWorker;

my $json = JSON::PP->new->canonical;
my $dir = tmpdir();
my $maker = ($ENV{WG_BUILD} // src('.')) . '/models/make-synthetic';
plan skip_all => "no $maker: build first" unless -x $maker;

# ---- models/make-synthetic ----
my $model = "$dir/syn.safetensors";
my $out = `$maker 16m $model 2>&1`;
is($?, 0, 'make-synthetic 16m writes a model') or diag($out);
like($out, qr/6 layers \(64 -> 1024 x 5 -> 10\), 17100840 bytes of weights/, 'it says what it wrote');
my $sum1 = `cksum < $model`;
`$maker 16m $dir/again.safetensors`;
is(`cksum < $dir/again.safetensors`, $sum1, 'the same size gives the same file byte for byte');
my $r = model_check($model, "$dir/syn-ref.json");
is($r->{code}, 0, 'model-check: the worker\'s CPU path matches the reference make-synthetic computed')
	or diag($r->{out} . $r->{err});
like($r->{out}, qr/^cpu: max abs diff \S+ over 8 samples x 10 outputs .*: ok$/m, 'within the CPU tolerance');
my $ref = $json->decode(slurp("$dir/syn-ref.json"));
my $body = $json->encode({ input => $ref->{inputs} });
my $weights = 17100840;

# ---- a worker on it ----
my ($pid, $port, $log) = worker_ready('--model', $model, '--max-batch', '32');
my $url = "http://127.0.0.1:$port";
my $m = sub { worker_metric($port, $_[0]) };
sub predict { my $r = http_post("$url/predict", $body); return ($r, eval { $json->decode($r->{content}) } // {}) }
sub sleeping { return $json->decode(http_get("$url/is_sleeping")->{content})->{is_sleeping} ? 1 : 0 }
sub maxdiff {
	my ($a, $b) = @_;
	my $d = 0;
	for my $i (0 .. $#$b) { for my $j (0 .. $#{ $b->[$i] }) { my $x = abs($a->[$i][$j] - $b->[$i][$j]); $d = $x if $x > $d } }
	return $d;
}

my ($p, $j) = predict();
is($p->{status}, 200, 'awake: a prediction is answered');
my $awake = $j->{result};
cmp_ok(maxdiff($awake, $ref->{outputs}), '<=', 1e-5, 'awake: the answers match the reference');
is(sleeping(), 0, 'GET /is_sleeping: {"is_sleeping": false} while awake');
is($m->('wakegate_worker_sleep_level'), 0, 'wakegate_worker_sleep_level is 0');
is($m->('wakegate_worker_model_weight_bytes'), $weights, 'wakegate_worker_model_weight_bytes is the weights\' size');
is($m->('wakegate_worker_model_host_bytes'), $weights, 'awake on the CPU, the working weights hold that much');
my $meta = $json->decode(http_get("$url/v2/models/synthetic-16m")->{content});
is($meta->{memory}{weight_bytes}, $weights, 'the model metadata says how much memory the model takes');
is($meta->{memory}{model_bytes}, $weights, 'on the CPU path the memory the model takes on its device is its weights');
is($meta->{sleep_level}, 0, 'and its sleep level');
my $rss_awake = $m->('wakegate_worker_rss_bytes');
cmp_ok($rss_awake, '>', $weights, 'wakegate_worker_rss_bytes: the process holds at least the weights awake');

# ---- level 1 ----
my $s = http_post("$url/sleep?level=1", '');
is($s->{status}, 200, 'POST /sleep?level=1 answers 200');
is($s->{content}, '', 'with no body, as vLLM');
is(sleeping(), 1, 'GET /is_sleeping: true');
is($m->('wakegate_worker_model_bytes'), $weights, 'wakegate_worker_model_bytes still says what it takes awake');
is($m->('wakegate_worker_sleep_level'), 1, 'wakegate_worker_sleep_level is 1');
is($m->('wakegate_worker_model_host_bytes'), 0, 'level 1 on the CPU frees the working weights');
my $rss1 = $m->('wakegate_worker_rss_bytes');
cmp_ok($rss_awake - $rss1, '>=', 0.8 * $weights, sprintf('the RSS drops by the weights at level 1 (%.1f -> %.1f MB)',
	$rss_awake / 2**20, $rss1 / 2**20));
($p, $j) = predict();
is($p->{status}, 503, 'asleep: a prediction gets 503');
like($j->{error}, qr/model "synthetic-16m" is asleep \(level 1\): POST \/wake_up/, 'with the reason');
$p = http_post("$url/v2/models/synthetic-16m/infer", $json->encode({ inputs => [{ name => 'input', shape => [1, 64],
	datatype => 'FP32', data => $ref->{inputs}[0] }] }));
is($p->{status}, 503, 'the KServe infer endpoint too');
$p = http_get("$url/v2/health/ready");
is($p->{status}, 503, 'readiness is 503 while asleep');
like($p->{content}, qr/"reason":"asleep \(level 1\)/, 'and says why');
is(http_get("$url/v2/health/live")->{status}, 200, 'liveness stays 200');
is(http_post("$url/reset_prefix_cache", '')->{status}, 200, 'POST /reset_prefix_cache answers 200 (no cache to reset)');
$p = http_post("$url/collective_rpc", '{"method":"reload_weights"}');
is($p->{status}, 409, 'reload_weights while asleep is refused with 409');
is(http_post("$url/sleep?level=1", '')->{status}, 200, 'a second sleep at the same level answers 200');
is($m->('wakegate_worker_sleeps_total\{level="1"\}'), 1, 'and does nothing (one sleep counted)');
$p = http_post("$url/wake_up", '');
is($p->{status}, 200, 'POST /wake_up answers 200');
is(sleeping(), 0, 'awake again');
($p, $j) = predict();
is($p->{status}, 200, 'after a level-1 wake a prediction is answered');
is_deeply($j->{result}, $awake, 'with the very same numbers as before the sleep');
is($m->('wakegate_worker_wakes_total\{from="1"\}'), 1, 'wakegate_worker_wakes_total{from="1"} counts it');
ok(defined $m->('wakegate_worker_wake_seconds\{from="1"\}'), 'wakegate_worker_wake_seconds{from="1"} says how long it took');
is(http_post("$url/wake_up", '')->{status}, 200, 'POST /wake_up while awake answers 200 and does nothing');

# ---- level 2 ----
$rss_awake = $m->('wakegate_worker_rss_bytes');
is(http_post("$url/sleep?level=2", '')->{status}, 200, 'POST /sleep?level=2 answers 200');
is($m->('wakegate_worker_sleep_level'), 2, 'wakegate_worker_sleep_level is 2');
my $rss2 = $m->('wakegate_worker_rss_bytes');
cmp_ok($rss_awake - $rss2, '>=', 0.8 * $weights, sprintf('the RSS drops by the weights at level 2 (%.1f -> %.1f MB)',
	$rss_awake / 2**20, $rss2 / 2**20));
is(http_post("$url/sleep?level=1", '')->{status}, 200, 'a lighter sleep while at level 2 answers 200');
is($m->('wakegate_worker_sleep_level'), 2, 'and stays at level 2');
like(slurp($log), qr/sleep level 2 .*rss [\d.]+ MB, weights in host memory 16\.3 MB.*\n.*asleep at level 2 after [\d.]+ms: rss [\d.]+ MB, weights in host memory 0\.0 kB/,
	'the log has the memory before and after');
is(http_post("$url/wake_up?tags=weights", '')->{status}, 200, 'POST /wake_up?tags=weights wakes it from level 2');
($p, $j) = predict();
is_deeply($j->{result}, $awake, 'a level-2 wake reloads the file: the very same numbers');
is($m->('wakegate_worker_wakes_total\{from="2"\}'), 1, 'wakegate_worker_wakes_total{from="2"} counts it');

# level 1 then 2: the deeper sleep from the lighter one
http_post("$url/sleep", '');
is($m->('wakegate_worker_sleep_level'), 1, 'POST /sleep without a level sleeps at level 1, as vLLM');
is(http_post("$url/sleep?level=2", '')->{status}, 200, 'from level 1 to level 2');
is($m->('wakegate_worker_sleep_level'), 2, 'now at level 2');
http_post("$url/wake_up", '');
($p, $j) = predict();
is_deeply($j->{result}, $awake, 'and back, with the same answers');

# ---- refused requests ----
$p = http_post("$url/sleep?level=3", '');
is($p->{status}, 400, 'level=3 is refused with 400');
like($p->{content}, qr/level must be 1 or 2/, 'and says what is allowed');
is(http_get("$url/sleep")->{status}, 405, 'GET /sleep is 405');
is(http_post("$url/is_sleeping", '')->{status}, 405, 'POST /is_sleeping is 405');
$p = http_post("$url/collective_rpc", '{"args":[]}');
is($p->{status}, 400, 'collective_rpc without a method is 400');
like($p->{content}, qr/Missing 'method'/, 'with vLLM\'s message');
$p = http_post("$url/collective_rpc", '{"method":"exec_anything"}');
is($p->{status}, 400, 'collective_rpc with another method is 400');
like($p->{content}, qr/implements reload_weights/, 'and names the one it has');
is(http_post("$url/collective_rpc", '{not json')->{status}, 400, 'collective_rpc with bad JSON is 400');

# ---- reload_weights ----
$p = http_post("$url/collective_rpc", '{"method":"reload_weights"}');
is($p->{status}, 200, 'reload_weights answers 200');
is_deeply($json->decode($p->{content}), { results => [undef] }, 'with {"results":[null]}, as vLLM');
like(slurp($log), qr/reload_weights: the model file is the one loaded; nothing to do/, 'an unchanged file is not read again');
# A file with the same network and other weights: the last bias nudged.
{
	open my $fh, '<:raw', $model or die;
	local $/;
	my $bytes = <$fh>;
	close $fh;
	my $f = unpack('f<', substr($bytes, -4));
	substr($bytes, -4) = pack('f<', $f + 1.0);
	spew("$dir/new.safetensors", $bytes);
	rename("$dir/new.safetensors", $model) or die;
}
$p = http_post("$url/collective_rpc", '{"method":"reload_weights"}');
is($p->{status}, 200, 'reload_weights after the file changed answers 200');
($p, $j) = predict();
ok(maxdiff($j->{result}, $awake) > 1e-4, 'and the new weights answer');
is($m->('wakegate_worker_reloads_total'), 2, 'wakegate_worker_reloads_total counts both reloads');
like(slurp($log), qr/reload_weights: new weights from the model file in [\d.]+ms/, 'the log says the new weights were read');
my $changed = $j->{result};
# A file with another network: refused, the old weights keep serving.
`$maker 1m $dir/small.safetensors`;
rename("$dir/small.safetensors", $model) or die;
$p = http_post("$url/collective_rpc", '{"method":"reload_weights"}');
is($p->{status}, 500, 'reload_weights with a different network in the file fails');
like($p->{content}, qr/reload_weights failed: .*layers|changed/, 'and says why');
($p, $j) = predict();
is_deeply($j->{result}, $changed, 'the weights loaded before keep serving');
# A level-2 wake that cannot load the file: 500, still asleep.
http_post("$url/sleep?level=2", '');
$p = http_post("$url/wake_up", '');
is($p->{status}, 500, 'a wake from level 2 that cannot load the file answers 500');
like($p->{content}, qr/wake_up from level 2 failed/, 'and says so');
is(sleeping(), 1, 'the worker is still asleep, not half awake');
is((predict())[0]{status}, 503, 'and inference still gets 503');
`$maker 16m $model`;
is(http_post("$url/wake_up", '')->{status}, 200, 'with the file back, the wake succeeds');
($p, $j) = predict();
is_deeply($j->{result}, $awake, 'and the original answers are back');
is(stop_proc($pid), 0, 'the worker exits 0 on SIGTERM');

# ---- requests queued before a sleep are answered first ----
{
	my ($pid, $port) = worker_ready('--model', $model, '--batch-delay', '2s', '--max-batch', '32');
	my @socks = map { send_post($port, '/predict', $body) } 1 .. 5;
	wait_until(sub { (worker_metric($port, 'wakegate_worker_queue_depth') // 0) == 5 }, 10);
	my $t0 = time;
	my $sl = send_post($port, '/sleep?level=2', '');
	my @answers = map { read_reply($_, 30) } @socks;
	my $sr = read_reply($sl, 30);
	is(scalar(grep { $_ && $_->{status} == 200 } @answers), 5, 'the 5 requests queued before a sleep are all answered 200');
	my $same = grep { $_ && eval { $json->decode($_->{body})->{result} } && maxdiff($json->decode($_->{body})->{result}, $awake) == 0 } @answers;
	is($same, 5, 'with the right answers');
	is($sr && $sr->{status}, 200, 'then the sleep is done');
	cmp_ok(time - $t0, '<', 1.5, 'without waiting out the 2s batch delay');
	stop_proc($pid);
}

# ---- a burst during sleeps and wakes loses nothing ----
{
	my ($pid, $port) = worker_ready('--model', $model, '--max-batch', '32');
	my $url = "http://127.0.0.1:$port";
	my $stop = "$dir/stop-burst";
	my $clients = 6;
	my @kids;
	for my $c (1 .. $clients) {
		my $kid = fork // die "fork: $!";
		if (!$kid) {
			my %n = (sent => 0, ok => 0, asleep => 0, wrong => 0, other => 0);
			my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
			until (-e $stop) {
				$n{sent}++;
				my $r = $http->post("$url/predict", { content => $body, headers => { 'Content-Type' => 'application/json' } });
				my $j = eval { $json->decode($r->{content}) } // {};
				if ($r->{status} == 200) {
					$n{ maxdiff($j->{result} // [], $awake) == 0 && @{ $j->{result} // [] } == 8 ? 'ok' : 'wrong' }++;
				} elsif ($r->{status} == 503 && ($j->{error} // '') =~ /is (asleep|falling asleep)/) {
					$n{asleep}++;
				} else {
					$n{other}++;
					print STDERR "client $c: $r->{status} $r->{content}\n";
				}
			}
			spew("$dir/burst-$c", $json->encode(\%n));
			_exit(0);
		}
		push @kids, $kid;
	}
	my $ctl_ok = 0;
	my $cycles = 0;
	sleep 0.3;
	for my $i (1 .. 6) {
		my $level = $i % 2 ? 1 : 2;
		$ctl_ok += http_post("$url/sleep?level=$level", '')->{status} == 200;
		sleep 0.1;
		$ctl_ok += http_post("$url/wake_up", '')->{status} == 200;
		sleep 0.1;
		$cycles++;
	}
	spew($stop, '');
	waitpid($_, 0) for @kids;
	my %t;
	for my $c (1 .. $clients) {
		my $n = $json->decode(slurp("$dir/burst-$c") || '{}');
		$t{$_} += $n->{$_} // 0 for qw(sent ok asleep wrong other);
	}
	is($ctl_ok, 2 * $cycles, "$cycles sleeps and wakes under a burst from $clients clients all answer 200");
	cmp_ok($t{sent}, '>', 20, "the clients sent $t{sent} requests meanwhile");
	is($t{ok} + $t{asleep}, $t{sent}, 'every request got an answer: 200, or 503 because the model was asleep');
	is($t{wrong}, 0, 'every 200 has the right numbers');
	is($t{other}, 0, 'no other status, no dropped connection');
	cmp_ok($t{ok}, '>', 0, "some were answered ($t{ok}), ...");
	cmp_ok($t{asleep}, '>', 0, "... some refused while asleep ($t{asleep})");
	my $counted = (worker_metric($port, 'wakegate_worker_requests_total\{endpoint="predict",code="200"\}') // 0)
		+ (worker_metric($port, 'wakegate_worker_requests_total\{endpoint="predict",code="503"\}') // 0);
	is($counted, $t{sent}, 'the worker counted exactly the requests the clients sent');
	is(stop_proc($pid), 0, 'the worker exits 0 on SIGTERM after the burst');
}

# ---- the man page has every endpoint and metric ----
{
	my $man = slurp(src('man/wakegate-worker.8'));
	$man =~ s/\\-/-/g;
	$man =~ s/\\f[BIRP]//g;
	for my $e ('POST /sleep', 'POST /wake_up', 'GET /is_sleeping', 'POST /collective_rpc', 'POST /reset_prefix_cache') {
		like($man, qr/\Q$e\E/, "the man page has $e");
	}
	for my $metric (qw(wakegate_worker_sleep_level wakegate_worker_rss_bytes wakegate_worker_model_weight_bytes
		wakegate_worker_model_bytes
		wakegate_worker_model_host_bytes wakegate_worker_model_device_bytes wakegate_worker_sleeps_total
		wakegate_worker_sleep_seconds wakegate_worker_wakes_total wakegate_worker_wake_seconds
		wakegate_worker_reloads_total wakegate_worker_reload_seconds)) {
		like($man, qr/\b$metric\b/, "the man page has $metric");
	}
}

# ---- SIGTERM while asleep ----
{
	my ($pid, $port) = worker_ready('--model', $model);
	http_post("http://127.0.0.1:$port/sleep?level=2", '');
	is(stop_proc($pid), 0, 'a worker asleep at level 2 exits 0 on SIGTERM');
}

done_testing();
