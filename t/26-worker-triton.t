#!/usr/bin/perl
# What Triton clients send (man wakegate-worker(8), BINARY TENSORS, DATATYPES,
# MODEL REPOSITORY): KServe v2's binary tensor data extension, built here
# from the spec (the JSON, its length in Inference-Header-Content-Length,
# then the raw little-endian tensors) and checked byte for byte, to the
# worker directly and through a real wakegate; inputs in other datatypes
# converted to the model's FP32; Triton's model repository API (index,
# load, unload); and a gateway with `sleep_api triton` unloading the real
# worker and loading it again for a request.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use POSIX qw(floor);
use WG;
use WGWorker;
use WGGateway;

my $json = JSON::PP->new->canonical;
my $t = $json->decode(slurp(src('models/digits-test.json')));
my @x = @{ $t->{inputs} }[0 .. 7];
my @labels = @{ $t->{labels} }[0 .. 7];
my @flat = map { @$_ } @x;

# A v2 infer request with the binary extension: (body, headers). $in is the
# packed input; %o: datatype, outputs (the "outputs" array), params.
sub bin_request {
	my ($in, %o) = @_;
	my $n = $o{rows} // 8;
	my $hdr = { inputs => [{ name => 'input', datatype => $o{datatype} // 'FP32', shape => [$n, 64],
		parameters => { binary_data_size => $o{size} // length $in } }] };
	$hdr->{outputs} = $o{outputs} if $o{outputs};
	$hdr->{parameters} = $o{params} if $o{params};
	my $j = $json->encode($hdr);
	return ($j . $in, { 'Content-Type' => 'application/octet-stream',
		'Inference-Header-Content-Length' => $o{ihcl} // length $j });
}
sub post_bin {
	my ($url, $body, $h) = @_;
	return WG::http(30)->post($url, { content => $body, headers => $h });
}
# A binary answer split as the spec says: (json header decoded, raw bytes), or () when it is not one.
sub split_reply {
	my ($r) = @_;
	my $l = $r->{headers}{'inference-header-content-length'} // return ();
	return () if $l !~ /^\d+$/ || $l > length $r->{content};
	return (eval { $json->decode(substr($r->{content}, 0, $l)) }, substr($r->{content}, $l));
}
sub argmax { my @v = @_; my $b = 0; $v[$_] > $v[$b] and $b = $_ for 0 .. $#v; return $b }
sub classes { my ($bytes) = @_; my @f = unpack('f<*', $bytes); return map { argmax(@f[$_ * 10 .. $_ * 10 + 9]) } 0 .. $#f / 10 }
# float -> IEEE binary16 bits, for the normal and zero values used here (multiples of 1/16 in [0, 1])
sub half {
	my ($v) = @_;
	return 0 if $v == 0;
	my $e = floor(log($v) / log(2));
	$e++ while 2**$e <= $v / 2;
	$e-- while 2**$e > $v;
	return (($e + 15) << 10) | int(($v / 2**$e - 1) * 1024 + 0.5);
}

my ($pid, $port, $log) = worker_ready('--name', 'digits', '--max-batch', '16');
my $url = "http://127.0.0.1:$port";
my $infer = "$url/v2/models/digits/infer";

# ---- server metadata names the extensions ----
my $meta = $json->decode(http_get("$url/v2")->{content});
ok((grep { $_ eq 'binary_tensor_data' } @{ $meta->{extensions} }) && (grep { $_ eq 'model_repository' } @{ $meta->{extensions} }),
	'GET /v2 lists the binary_tensor_data and model_repository extensions');

# ---- the JSON answer, the reference for the bytes ----
my $jr = post_json($infer, { inputs => [{ name => 'input', datatype => 'FP32', shape => [8, 64], data => \@flat }] });
is($jr->{status}, 200, 'a JSON infer request is answered');
my $want = $json->decode($jr->{content})->{outputs}[0]{data};
my $want_bytes = pack('f<*', @$want);	# 9 digits read back to the same floats: these are the model's bytes
is(length $want_bytes, 8 * 10 * 4, '8 x 10 FP32 outputs');
is(scalar(grep { (classes($want_bytes))[$_] == $labels[$_] } 0 .. 7), 8, 'the JSON answer names the right digits');

# ---- binary in, binary out (per output) ----
my $in = pack('f<*', @flat);
my ($body, $h) = bin_request($in, outputs => [{ name => 'output', parameters => { binary_data => JSON::PP::true } }]);
my $r = post_bin($infer, $body, $h);
is($r->{status}, 200, 'binary FP32 input, binary output asked: 200') or diag($r->{content});
is($r->{headers}{'content-type'}, 'application/octet-stream', 'Content-Type: application/octet-stream');
my ($jh, $raw) = split_reply($r);
ok($jh, 'Inference-Header-Content-Length gives the length of a JSON object at the start of the body');
is($r->{headers}{'content-length'}, $r->{headers}{'inference-header-content-length'} + 320,
	'Content-Length is the JSON plus 320 bytes of tensor');
is_deeply($jh, { model_name => 'digits', model_version => '1', outputs => [{ name => 'output', datatype => 'FP32',
	shape => [8, 10], parameters => { binary_data_size => 320 } }] }, 'the JSON says the output is 320 bytes of binary data, and has no "data"');
ok($raw eq $want_bytes, 'the bytes after it are the model\'s outputs as little-endian FP32, byte for byte');
is_deeply([classes($raw)], \@labels, 'the right digits');
my $bin_reply = $r->{content};

# binary_data_output for all outputs; "id" echoed
($body, $h) = bin_request($in, params => { binary_data_output => JSON::PP::true });
$r = post_bin($infer, $body, $h);
($jh, $raw) = split_reply($r);
ok($r->{status} == 200 && $raw eq $want_bytes, 'parameters.binary_data_output asks for every output as binary: the same bytes');
($body, $h) = bin_request($in, params => { binary_data_output => JSON::PP::true },
	outputs => [{ name => 'output', parameters => { binary_data => JSON::PP::false } }]);
$r = post_bin($infer, $body, $h);
ok($r->{status} == 200 && !defined $r->{headers}{'inference-header-content-length'}
	&& $json->decode($r->{content})->{outputs}[0]{data}, 'an output\'s binary_data false overrides it: JSON data');

# binary in, JSON out
($body, $h) = bin_request($in);
$r = post_bin($infer, $body, $h);
is($r->{status}, 200, 'binary input, no binary output asked');
is($r->{headers}{'content-type'}, 'application/json', 'the answer is JSON');
ok(!defined $r->{headers}{'inference-header-content-length'}, 'without Inference-Header-Content-Length');
is_deeply($json->decode($r->{content})->{outputs}[0]{data}, $want, 'with the same values as the JSON request');

# JSON in, binary out
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'FP32', shape => [8, 64], data => \@flat }],
	outputs => [{ name => 'output', parameters => { binary_data => JSON::PP::true } }] });
($jh, $raw) = split_reply($r);
ok($r->{status} == 200 && $raw eq $want_bytes, 'a JSON request may ask for a binary output');

# ---- other datatypes, converted to FP32 ----
($body, $h) = bin_request(pack('S<*', map { half($_) } @flat), datatype => 'FP16',
	outputs => [{ name => 'output', parameters => { binary_data => JSON::PP::true } }]);
$r = post_bin($infer, $body, $h);
($jh, $raw) = split_reply($r);
is($r->{status}, 200, 'FP16 binary input: 200') or diag($r->{content});
ok(defined $raw && $raw eq $want_bytes, 'FP16 values (exact in half precision) give the same bytes as FP32');
is($jh->{outputs}[0]{datatype}, 'FP32', 'the output is the model\'s FP32');
my @ints = map { int($_ * 16) } @flat;	# 0..16: exact in every integer type
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'FP32', shape => [8, 64], data => \@ints }],
	parameters => { binary_data_output => JSON::PP::true } });
my ($ijh, $int_bytes) = split_reply($r);
for my $c (['INT8', 'c'], ['INT32', 'l<'], ['UINT8', 'C'], ['INT64', 'q<'], ['FP64', 'd<']) {
	($body, $h) = bin_request(pack("$c->[1]*", @ints), datatype => $c->[0], params => { binary_data_output => JSON::PP::true });
	$r = post_bin($infer, $body, $h);
	($jh, $raw) = split_reply($r);
	ok($r->{status} == 200 && defined $raw && $raw eq $int_bytes, "$c->[0] binary input is converted: the same bytes as FP32")
		or diag($r->{content});
}
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'INT8', shape => [8, 64], data => \@ints }],
	parameters => { binary_data_output => JSON::PP::true } });
($jh, $raw) = split_reply($r);
ok($r->{status} == 200 && $raw eq $int_bytes, 'INT8 JSON data is converted too');
my @bools = map { $_ > 0.5 ? 1 : 0 } @flat;
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'FP32', shape => [8, 64], data => \@bools }],
	parameters => { binary_data_output => JSON::PP::true } });
my (undef, $bool_bytes) = split_reply($r);
($body, $h) = bin_request(pack('C*', @bools), datatype => 'BOOL', params => { binary_data_output => JSON::PP::true });
($jh, $raw) = split_reply(post_bin($infer, $body, $h));
ok(defined $raw && $raw eq $bool_bytes, 'BOOL binary input (one byte, 0 or 1) is 0.0 / 1.0');
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'BOOL', shape => [8, 64],
	data => [map { $_ ? JSON::PP::true : JSON::PP::false } @bools] }], parameters => { binary_data_output => JSON::PP::true } });
($jh, $raw) = split_reply($r);
ok($r->{status} == 200 && $raw eq $bool_bytes, 'BOOL JSON data (true/false) too');

# ---- refusals: 400 with what is wrong ----
my @bad = (
	[[bin_request($in, size => 100)], qr/binary_data_size must be 2048 \(512 FP32 values of 4 bytes\)/, 'a binary_data_size that does not fit the shape'],
	[[bin_request($in . "xx", size => 2048)], qr/2050 bytes of binary data follow the JSON.*says 2048/, 'bytes left over after the tensor'],
	[[bin_request(substr($in, 0, 2000), size => 2048)], qr/2000 bytes of binary data follow/, 'a body cut short'],
	[[bin_request($in, ihcl => 99999)], qr/Inference-Header-Content-Length 99999 is not within the body/, 'a header length past the body'],
	[[bin_request($in, ihcl => 'abc')], qr/Inference-Header-Content-Length is not a byte count/, 'a header length that is not a number'],
	[[bin_request($in, datatype => 'BYTES')], qr/datatype BYTES is not supported: the model takes FP32/, 'BYTES'],
	[[bin_request(pack('C*', (2) x 512), datatype => 'BOOL')], qr/inputs\[0\]\[0\] is byte 2: BOOL is 0 or 1/, 'a BOOL byte that is not 0 or 1'],
	[[bin_request(pack('f<*', 1, 9**9**9, (0) x 510))], qr/inputs\[0\]\[1\] is out of range for FP32/, 'an infinity'],
	[[bin_request($in, outputs => [{ name => 'probs' }])], qr/unknown output "probs"/, 'an unknown output'],
	[[bin_request($in, outputs => [{ name => 'output', parameters => { classification => 3 } }])], qr/classification extension is not supported/, 'the classification extension'],
);
for my $b (@bad) {
	$r = post_bin($infer, @{ $b->[0] });
	ok($r->{status} == 400 && error_of($r) =~ $b->[1], "400: $b->[2]") or diag("$r->{status} $r->{content}");
}
my $nohdr = { inputs => [{ name => 'input', datatype => 'FP32', shape => [8, 64], parameters => { binary_data_size => 2048 } }] };
$r = post_bin($infer, $json->encode($nohdr) . $in, { 'Content-Type' => 'application/octet-stream' });
ok($r->{status} == 400 && error_of($r) =~ /2048 bytes follow the JSON object: binary tensor data needs the Inference-Header-Content-Length header/,
	'400: binary data without the header (the body is not JSON then)') or diag($r->{content});
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'INT8', shape => [1, 64], data => [200, (0) x 63] }] });
ok($r->{status} == 400 && error_of($r) =~ /inputs\[0\]\.data\[0\] is out of range for INT8/, '400: an INT8 value out of range');
$r = post_json($infer, { inputs => [{ name => 'input', datatype => 'INT32', shape => [1, 64], data => [0.5, (0) x 63] }] });
ok($r->{status} == 400 && error_of($r) =~ /inputs\[0\]\.data\[0\] is not an integer \(datatype INT32\)/, '400: a fraction as INT32');

# ---- the model repository API ----
sub index_of { my ($b) = @_; my $x = http_post("$url/v2/repository/index", $b // ''); return ($x->{status}, eval { $json->decode($x->{content}) }) }
my ($st, $idx) = index_of();
is($st, 200, 'POST /v2/repository/index with no body: 200');
is_deeply($idx, [{ name => 'digits', version => '1', state => 'READY' }], 'the one model, READY');
($st, $idx) = index_of('{"ready":true}');
is_deeply($idx, [{ name => 'digits', version => '1', state => 'READY' }], '{"ready": true} lists it while it is ready');
is(http_get("$url/v2/repository/index")->{status}, 405, 'GET /v2/repository/index: 405 (Triton\'s is a POST)');
$r = http_post("$url/v2/repository/models/digits/unload", '');
is($r->{status}, 200, 'POST /v2/repository/models/digits/unload: 200');
is($r->{content}, '', 'with no body');
is(worker_metric($port, 'wakegate_worker_sleep_level'), 2, 'unloaded is sleep level 2: the weights let go of');
($st, $idx) = index_of();
is_deeply($idx, [{ name => 'digits', version => '1', state => 'UNAVAILABLE', reason => 'unloaded' }], 'the index says UNAVAILABLE, unloaded');
($st, $idx) = index_of('{"ready":true}');
is_deeply($idx, [], '{"ready": true} leaves it out');
is(http_get("$url/v2/health/ready")->{status}, 503, 'readiness is 503 while unloaded');
is(http_get("$url/v2/models/digits/ready")->{status}, 503, 'the model\'s readiness too');
$r = post_bin($infer, bin_request($in));
ok($r->{status} == 503 && error_of($r) =~ m{unloaded: POST /v2/repository/models/digits/load}, 'inference: 503, saying how to load it')
	or diag($r->{content});
is(http_post("$url/v2/repository/models/digits/unload", '')->{status}, 200, 'unload again: 200, nothing to do');
$r = http_post("$url/v2/repository/models/digits/load", '{"parameters":{"config":"{}"}}');
ok($r->{status} == 400 && error_of($r) =~ /parameter "config" is not supported/, 'load with a config: 400, not silently ignored');
$r = http_post("$url/v2/repository/models/other/load", '');
ok($r->{status} == 400 && error_of($r) =~ /failed to load 'other', no version is available: this worker serves "digits"/,
	'load of a model it does not serve: 400');
$r = http_post("$url/v2/repository/models/digits/load", '');
is($r->{status}, 200, 'POST /v2/repository/models/digits/load: 200');
is($r->{content}, '', 'with no body');
($st, $idx) = index_of();
is_deeply($idx, [{ name => 'digits', version => '1', state => 'READY' }], 'READY again');
is(http_get("$url/v2/health/ready")->{status}, 200, 'readiness is 200');
is(post_bin($infer, bin_request($in, params => { binary_data_output => JSON::PP::true }))->{content}, $bin_reply,
	'the same answer, byte for byte, as before the unload');
is(http_post("$url/v2/repository/models/digits/load", '')->{status}, 200, 'load of a loaded model: 200 (Triton reloads it)');
like(slurp($log), qr/reload_weights: the model file is the one loaded/, 'which reads the file again only if it changed');
like(http_get("$url/metrics")->{content}, qr/wakegate_worker_requests_total\{endpoint="repository_unload",code="200"\} 2/,
	'/metrics counts the repository calls');
# level 1 (vLLM's sleep) then load: wake and reload
is(http_post("$url/sleep?level=1", '')->{status}, 200, 'asleep at level 1 through the vLLM API');
($st, $idx) = index_of();
is_deeply($idx, [{ name => 'digits', version => '1', state => 'UNAVAILABLE', reason => 'asleep (level 1)' }], 'the index says why');
is(http_post("$url/v2/repository/models/digits/load", '')->{status}, 200, 'load wakes it from level 1 too');
is(worker_metric($port, 'wakegate_worker_sleep_level'), 0, 'awake');

# ---- through a real wakegate ----
my ($text, $gport, $admin) = gw_conf(launch => worker_cmd(), upstream => 'idle_timeout 60s;');
my $g = gw_start(conf => $text, port => $gport, admin => $admin);
$r = post_bin("$g->{url}/v2/models/digits/infer", bin_request($in, params => { binary_data_output => JSON::PP::true }));
is($r->{status}, 200, 'through wakegate: the binary request is answered (after a cold start)') or diag(gw_log($g));
is($r->{headers}{'inference-header-content-length'}, length(substr($bin_reply, 0, length($bin_reply) - 320)),
	'Inference-Header-Content-Length comes through, unchanged');
is($r->{headers}{'content-type'}, 'application/octet-stream', 'and the Content-Type');
ok($r->{content} eq $bin_reply, 'the body is the worker\'s, byte for byte (JSON header and raw floats)')
	or diag(length($r->{content}) . " bytes: " . substr($r->{content}, 0, 200));
($jh, $raw) = split_reply($r);
is_deeply([classes($raw // '')], \@labels, 'the right digits through the gateway');
stop_proc($g->{pid});

# ---- sleep_api triton against the real worker ----
($text, $gport, $admin) = gw_conf(launch => worker_cmd(), upstream => 'sleep_api triton; sleep level=2 after=1s; idle_timeout 60s;');
$g = gw_start(conf => $text, port => $gport, admin => $admin);
sub st { my $s = gw_status($g)->{upstreams}{digits} // {}; return $s->{replicas}[0] // {} }
my $gin = "$g->{url}/v2/models/digits/infer";
$r = post_bin($gin, bin_request($in, params => { binary_data_output => JSON::PP::true }));
is($r->{status}, 200, 'sleep_api triton: the first request is answered');
my $wurl = st()->{url};
ok(wait_until(sub { (st()->{state} // '') eq 'ASLEEP2' }, 15), 'idle 1s: the gateway puts it to sleep at level 2') or diag(gw_log($g));
my $wi = eval { $json->decode(http_post("$wurl/v2/repository/index", '')->{content}) } // [];
is_deeply($wi, [{ name => 'digits', version => '1', state => 'UNAVAILABLE', reason => 'unloaded' }],
	'through the worker\'s repository API: unloaded');
$r = post_bin($gin, bin_request($in, params => { binary_data_output => JSON::PP::true }));
is($r->{status}, 200, 'a request loads it again') or diag(gw_log($g));
ok(exists $r->{headers}{'x-wakegate-cold'}, 'it waited for the load (X-Wakegate-Cold)');
ok($r->{content} eq $bin_reply, 'and is answered right, byte for byte');
$wi = eval { $json->decode(http_post("$wurl/v2/repository/index", '')->{content}) } // [];
is(($wi->[0] // {})->{state}, 'READY', 'the worker is READY again');
my $wm = http_get("$wurl/metrics")->{content};
like($wm, qr/endpoint="repository_unload",code="200"\} 1\b/, 'the worker got one unload');
like($wm, qr/endpoint="repository_load",code="200"\} 1\b/, 'and one load');
like(gw_log($g), qr/ASLEEP2 -> WAKING .*cause=/, 'the gateway logs the wake');
unlike(gw_log($g), qr/refused move/, 'no move outside the move table');

done_testing;
