#!/usr/bin/perl
# wakegate-worker's HTTP API: /predict, KServe v2, errors, metrics, flags.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use WG;
use WGWorker;

my $json = JSON::PP->new->canonical;
my $model = src('models/digits.safetensors');
my $test = $json->decode(slurp(src('models/digits-test.json')));
my $ref = $json->decode(slurp(src('models/digits-ref.json')));

sub argmax { my ($v) = @_; my $m = 0; $v->[$_] > $v->[$m] and $m = $_ for 0 .. $#$v; return $m }
sub sum { my $s = 0; $s += $_ for @_; return $s }

# ---- flags ----
{
	my ($code, $out) = run_worker('--help');
	is($code, 0, '--help exits 0');
	my $man = slurp(src('man/wakegate-worker.8'));
	for my $flag (qw(--model --listen --device --max-batch --batch-delay --queue --name --warmup --help --version)) {
		like($out, qr/\Q$flag\E\b/, "--help lists $flag");
		(my $roff = $flag) =~ s/-/\\\\?-/g;    # roff writes - as \-
		like($man, qr/$roff/, "the man page lists $flag");
	}
	($code, $out) = run_worker('--version');
	like($out, qr/^wakegate-worker \d+\.\d+/, '--version prints the version');
	($code, $out) = run_worker('--model', $model, '--listen', '127.0.0.1:1', '--frobnicate');
	is($code, 2, 'an unknown flag exits 2');
	like($out, qr/unknown option "--frobnicate"/, 'an unknown flag is named');
	($code, $out) = run_worker('--listen', '127.0.0.1:1');
	is($code, 2, 'a missing --model exits 2');
	like($out, qr/--model FILE is required/, 'a missing --model is explained');
	($code, $out) = run_worker('--model', $model, '--listen', '127.0.0.1:1', '--batch-delay', 'soon');
	is($code, 2, 'a bad --batch-delay exits 2');
	like($out, qr/--batch-delay: "soon" is not a time/, 'a bad --batch-delay is explained');
	($code, $out) = run_worker('--model', $model, '--listen', '127.0.0.1:1', '--device', 'tpu');
	is($code, 2, 'an unknown --device exits 2');
}

# ---- bad model files and devices ----
{
	my $bad = tmpdir() . '/bad.safetensors';
	spew($bad, "\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}");
	my ($code, $out) = run_worker('--model', $bad, '--listen', '127.0.0.1:' . free_port());
	is($code, 1, 'a malformed model file exits 1');
	like($out, qr/cannot load model \Q$bad\E: \S/, 'a malformed model file gets the model core\'s message');
	unlike($out, qr/listening/, 'a malformed model file is never served');

	($code, $out) = run_worker('--model', tmpdir() . '/missing.safetensors', '--listen', '127.0.0.1:' . free_port());
	is($code, 1, 'a missing model file exits 1');

	my ($pid, $url, $log) = worker_start('--device', 'cuda');
	wait_until(sub { slurp($log) =~ /listening on|--device cuda/ }, 30);
	SKIP: {
		skip 'a CUDA device is usable here', 2 if slurp($log) =~ /listening on/;
		my $status = stop_proc($pid, 0, 30);    # signal 0: only wait for it
		is($status, 1 << 8, '--device cuda without a GPU exits 1');
		like(slurp($log), qr/--device cuda: .*CUDA/i, '--device cuda without a GPU says why');
	}
	stop_proc($pid);
}

# ---- ready only after the warmup ----
{
	my ($pid, $url, $log) = worker_start('--warmup', '8000', '--max-batch', '256');
	ok(wait_until(sub { (http_get("$url/v2/health/live", timeout => 2)->{status} // 0) == 200 }, 30),
		'live answers 200 as soon as the worker serves');
	my $early = http_get("$url/v2/health/ready");
	is($early->{status}, 503, 'ready answers 503 while the warmup runs');
	is(http_get("$url/v2/models/digits/ready")->{status}, 503, 'the model is not ready while the warmup runs');
	my $r = post_json("$url/predict", { input => [$test->{inputs}[0]] });
	is($r->{status}, 200, 'a prediction sent during the warmup is answered after it');
	ok(wait_http("$url/v2/health/ready", 30), 'ready answers 200 once the warmup is done');
	like(slurp($log), qr/ready: warmup \(8000 runs of a batch of 256\) took [\d.]+ms/, 'the log says how long the warmup took');
	is(stop_proc($pid), 0, 'the worker exits 0 on SIGTERM');
}

# ---- the API ----
my ($pid, $url, $log) = worker_start('--max-batch', '32');
ok(wait_http("$url/v2/health/ready", 30), 'the worker gets ready');
my $startlog = slurp($log);
like($startlog, qr/model "digits" from \S+: \d+ layers, 64 inputs, 10 outputs, loaded in [\d.]+ms/, 'the log says how long loading took');
like($startlog, qr/device: cpu/, 'the log names the device');
like($startlog, qr{listening on http://127\.0\.0\.1:\d+}, 'the log names the listen address');

my %sent;    # endpoint code => count, to check against the metrics

{
	my $r = http_get("$url/v2/health/live"); $sent{"live 200"}++;
	is($r->{status}, 200, 'live answers 200');
	$r = http_get("$url/v2"); $sent{"server_metadata 200"}++;
	my $meta = $json->decode($r->{content});
	is($meta->{name}, 'wakegate-worker', 'server metadata names the server');
	like($meta->{version}, qr/^\d+\.\d+/, 'server metadata has a version');

	$r = http_get("$url/v2/models/digits"); $sent{"model_metadata 200"}++;
	is($r->{status}, 200, 'model metadata answers 200');
	$meta = $json->decode($r->{content});
	is($meta->{name}, 'digits', 'model metadata names the model');
	is_deeply($meta->{inputs}, [{ name => 'input', datatype => 'FP32', shape => [-1, 64] }], 'model metadata gives the input as FP32 [-1,64]');
	is_deeply($meta->{outputs}, [{ name => 'output', datatype => 'FP32', shape => [-1, 10] }], 'model metadata gives the output as FP32 [-1,10]');
	is(http_get("$url/v2/models/digits/ready")->{status}, 200, 'the model is ready'); $sent{"model_ready 200"}++;
}

{
	# All test samples, in batches of 32: probabilities that sum to 1, argmax = label.
	my ($right, $n, $sums_ok) = (0, 0, 1);
	my @in = @{ $test->{inputs} };
	for (my $i = 0; $i < @in; $i += 32) {
		my @chunk = @in[$i .. ($i + 31 < $#in ? $i + 31 : $#in)];
		my $r = post_json("$url/predict", { input => \@chunk }); $sent{"predict 200"}++;
		die "predict: $r->{status} $r->{content}" unless $r->{status} == 200;
		my $res = $json->decode($r->{content})->{result};
		die "got " . scalar(@$res) . " results for " . scalar(@chunk) unless @$res == @chunk;
		for my $k (0 .. $#chunk) {
			$sums_ok = 0 if @{ $res->[$k] } != 10 || abs(sum(@{ $res->[$k] }) - 1) > 1e-4;
			$right++ if argmax($res->[$k]) == $test->{labels}[$i + $k];
			$n++;
		}
	}
	ok($sums_ok, 'every prediction is 10 probabilities that sum to 1');
	cmp_ok($right / $n, '>=', 0.95, "accuracy through the HTTP API is at least 95% on the held-out split ($right of $n)");

	my $r = post_json("$url/predict", { input => $ref->{inputs} }); $sent{"predict 200"}++;
	my $res = $json->decode($r->{content})->{result};
	my $maxdiff = 0;
	for my $k (0 .. $#$res) {
		for my $c (0 .. 9) {
			my $d = abs($res->[$k][$c] - $ref->{outputs}[$k][$c]);
			$maxdiff = $d if $d > $maxdiff;
		}
	}
	cmp_ok($maxdiff, '<', 1e-5, 'predictions match the numpy reference outputs');

	my $flat = post_json("$url/predict", { input => $ref->{inputs}[0] }); $sent{"predict 200"}++;
	is($flat->{status}, 200, 'one flat sample is accepted by /predict');
	is_deeply($json->decode($flat->{content})->{result}, $res->[0], 'one flat sample gets one flat row of the same numbers');

	my @data = map { @$_ } @{ $ref->{inputs} };
	my $b = @{ $ref->{inputs} };
	$r = post_json("$url/v2/models/digits/infer", { id => 'req-42', inputs => [{ name => 'input', shape => [$b, 64],
		datatype => 'FP32', data => \@data }] }); $sent{"infer 200"}++;
	is($r->{status}, 200, 'v2 infer answers 200');
	my $v2 = $json->decode($r->{content});
	is($v2->{model_name}, 'digits', 'v2 infer names the model');
	is($v2->{id}, 'req-42', 'v2 infer echoes the request id');
	is($v2->{outputs}[0]{name}, 'output', 'v2 infer names the output');
	is($v2->{outputs}[0]{datatype}, 'FP32', 'v2 infer gives the output datatype');
	is_deeply($v2->{outputs}[0]{shape}, [$b, 10], 'v2 infer gives the output shape [B,10]');
	is_deeply($v2->{outputs}[0]{data}, [map { @$_ } @$res], 'v2 infer gives the same numbers as /predict');

	$r = post_json("$url/v2/models/digits/infer", { inputs => [{ name => 'input', shape => [$b, 64],
		datatype => 'FP32', data => $ref->{inputs} }] }); $sent{"infer 200"}++;
	is_deeply($json->decode($r->{content})->{outputs}[0]{data}, [map { @$_ } @$res], 'v2 infer takes nested data too');
}

{
	my $s = [(0.5) x 64];
	my @bad_predict = (
		['', qr/empty body/, 'an empty body'],
		['{"input": [[1,2,', qr/bad JSON/, 'bad JSON'],
		['[1,2,3]', qr/must be a JSON object/, 'a body that is not an object'],
		['{"inputs": []}', qr/missing "input"/, 'a body without "input"'],
		['{"input": 7}', qr/"input" must be an array/, 'an "input" that is not an array'],
		['{"input": []}', qr/empty batch/, 'an empty batch'],
		[$json->encode({ input => [[(0.5) x 63]] }), qr/input\[0\] has 63 values, expected 64/, 'a sample of the wrong length'],
		[$json->encode({ input => [$s, [(0.5) x 10, 'x', (0.5) x 53]] }), qr/input\[1\]\[10\] is not a number/, 'a value that is not a number'],
		[$json->encode({ input => [($s) x 33] }), qr/batch of 33 samples is larger than --max-batch 32/, 'a batch larger than --max-batch'],
	);
	for my $c (@bad_predict) {
		my $r = post_json("$url/predict", $c->[0]); $sent{"predict 400"}++;
		is($r->{status}, 400, "/predict answers 400 to $c->[2]");
		like(error_of($r), $c->[1], "/predict says why for $c->[2]");
	}
	my $t = sub { my %o = @_; return { inputs => [{ name => 'input', shape => [1, 64], datatype => 'FP32', data => $s, %o }] } };
	my @bad_infer = (
		[{ inputs => 'x' }, qr/"inputs" must be an array of one tensor/, 'no inputs array'],
		[$t->(datatype => 'FP64'), qr/datatype FP64 is not supported/, 'a datatype other than FP32'],
		[$t->(name => 'pixels'), qr/unknown input "pixels"/, 'an unknown input name'],
		[$t->(shape => [1, 63]), qr/shape \[1,63\] does not match the model's input \[-1,64\]/, 'a shape that does not fit the model'],
		[$t->(shape => [0, 64], data => []), qr/empty batch/, 'an empty batch'],
		[$t->(shape => [40, 64], data => [($s) x 40]), qr/larger than --max-batch 32/, 'a batch larger than --max-batch'],
		[$t->(shape => [2, 64]), qr/inputs\[0\]\.data has 64 values, expected 128/, 'data that does not fill the shape'],
		[$t->(data => [(1) x 63, 'one']), qr/inputs\[0\]\.data\[63\] is not a number/, 'data that is not numbers'],
	);
	for my $c (@bad_infer) {
		my $r = post_json("$url/v2/models/digits/infer", $c->[0]); $sent{"infer 400"}++;
		is($r->{status}, 400, "v2 infer answers 400 to $c->[2]");
		like(error_of($r), $c->[1], "v2 infer says why for $c->[2]");
	}

	my $big = '{"input":[' . join(',', ('0.123456789') x 20000) . ']}';
	my $r = post_json("$url/predict", $big); $sent{"predict 413"}++;
	is($r->{status}, 413, 'a body over the limit gets 413');
	like(error_of($r), qr/larger than the limit/, 'a body over the limit is explained');
	$r = post_json("$url/predict", '{"input":[' . join(',', ('0.123456789') x 200000) . ']}');
	is($r->{status}, 413, 'a huge body gets 413 without being read');

	$r = http_get("$url/nowhere"); $sent{"other 404"}++;
	is($r->{status}, 404, 'an unknown path gets 404');
	like(error_of($r), qr{no such endpoint: /nowhere}, 'an unknown path is named');
	$r = post_json("$url/v2/models/cats/infer", $t->()); $sent{"infer 404"}++;
	is($r->{status}, 404, 'an unknown model gets 404');
	like(error_of($r), qr/unknown model "cats"/, 'an unknown model is named');
	is(http_get("$url/v2/models/cats")->{status}, 404, 'metadata of an unknown model gets 404'); $sent{"model_metadata 404"}++;
	$r = http_get("$url/predict"); $sent{"predict 405"}++;
	is($r->{status}, 405, 'GET /predict gets 405');
	is($r->{headers}{allow}, 'POST', '405 says which method is allowed');
	like(error_of($r), qr/method GET is not allowed on \/predict/, '405 is explained');
	is(post_json("$url/metrics", '{}')->{status}, 405, 'POST /metrics gets 405'); $sent{"metrics 405"}++;
	# a reason that cannot be JSON text (a path byte that is not UTF-8) still gives the error body
	my $raw = IO::Socket::INET->new(PeerAddr => $url =~ s{^http://}{}r) or die "connect: $!";
	print $raw "GET /no\xffwhere HTTP/1.0\r\n\r\n"; $sent{"other 404"}++;
	my $reply = do { local $/; <$raw> } // '';
	like($reply, qr{^HTTP/1\.\d 404 }, 'a path that is not UTF-8 gets 404');
	like($reply, qr{\r\n\r\n\{"error":"error"\}\z}, 'its body is still a JSON error, with a reason JSON can carry');
}

{
	my $r = http_get("$url/metrics");
	is($r->{status}, 200, 'metrics answer 200');
	my $m = $r->{content};
	my $all = 1;
	for my $k (sort keys %sent) {
		my ($ep, $code) = split / /, $k;
		my ($got) = $m =~ /^wakegate_worker_requests_total\{endpoint="$ep",code="$code"\} (\d+)$/m;
		if (($got // -1) != $sent{$k}) { diag("$k: sent $sent{$k}, metrics say " . ($got // 'nothing')); $all = 0 }
	}
	ok($all, 'metrics count the requests by endpoint and code');
	like($m, qr/^wakegate_worker_device\{device="cpu"\} 1$/m, 'metrics name the device');
	like($m, qr/^wakegate_worker_queue_depth 0$/m, 'metrics show an empty queue');
	like($m, qr/^wakegate_worker_batch_size_count [1-9]\d*$/m, 'metrics have a batch size histogram');
	like($m, qr/^wakegate_worker_inference_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m, 'metrics have an inference time histogram');
	like($m, qr/^wakegate_worker_ready 1$/m, 'metrics say the worker is ready');
}

is(stop_proc($pid), 0, 'the worker exits 0 on SIGTERM');
done_testing();
