# wakegate-warmer: warmup inference against a real wakegate-worker, and the
# ways a warmup fails (nothing listening, unknown model, a backend that
# answers 500, a backend that never answers).
use strict;
use warnings;
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use File::Basename qw(dirname);
use Time::HiRes qw(time sleep);
use WG;

my $warmer = bin('wakegate-warmer');
my $worker_bin = bin('wakegate-worker');
my $dir = tmpdir();

# Runs wakegate-warmer; returns { rc, out, err, secs }. Killed after 60s so
# that a hung warmer fails the test instead of hanging it.
sub warm {
	my @args = @_;
	my ($out, $err) = ("$dir/warm.out", "$dir/warm.err");
	my $t0 = time;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', $out or die;
		open STDERR, '>', $err or die;
		exec $warmer, @args or die "exec: $!";
	}
	my $end = $t0 + 60;
	while (waitpid($pid, WNOHANG) != $pid) {
		if (time > $end) { kill 'KILL', $pid; waitpid($pid, 0); last }
		sleep 0.02;
	}
	my $rc = $? & 127 ? -1 : $? >> 8;
	return { rc => $rc, out => scalar(slurp($out)) // "", err => scalar(slurp($err)) // "", secs => time - $t0 };
}

# A tiny HTTP backend in its own process. mode "500": model metadata like a
# KServe worker, but every POST fails with a long 500; mode "hang": accepts
# and never answers.
sub fake_backend {
	my ($mode) = @_;
	my $port = free_port();
	my $code = <<'EOF';
use IO::Socket::INET;
my ($port, $mode) = @ARGV;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port", Listen => 64, ReuseAddr => 1) or die "listen: $!";
my @held;
while (my $c = $s->accept) {
	if ($mode eq 'hang') { push @held, $c; next }
	while (defined(my $line = <$c>)) {
		my ($method) = split / /, $line;
		my $len = 0;
		while (defined($line = <$c>)) {
			last if $line =~ /^\r?\n$/;
			$len = $1 if $line =~ /^content-length:\s*(\d+)/i;
		}
		read($c, my $body, $len) if $len;
		my ($status, $out) = $method eq 'GET'
			? ('200 OK', '{"name":"digits","versions":["1"],"platform":"fake","inputs":[{"name":"input","datatype":"FP32","shape":[-1,64]}],"outputs":[{"name":"output","datatype":"FP32","shape":[-1,10]}]}')
			: ('500 Internal Server Error', '{"error":"CUDA error: out of memory' . (' (really)' x 40) . '"}');
		print $c "HTTP/1.1 $status\r\nContent-Type: application/json\r\nContent-Length: "
			. length($out) . "\r\n\r\n$out";
	}
	close $c;
}
EOF
	my $pid = start_proc(name => "fake-$mode-$port", cmd => [$^X, '-e', $code, $port, $mode]);
	wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") }, 30)
		or die "fake backend did not start";
	return ($port, $pid);
}

# The worker's request counter for one endpoint, all codes added up.
sub served {
	my ($base, $endpoint) = @_;
	my $r = http_get("$base/metrics");
	die "GET /metrics: $r->{status}" unless $r->{status} == 200;
	my $n = 0;
	$n += $1 while $r->{content} =~ /^wakegate_worker_requests_total\{endpoint="\Q$endpoint\E"[^}]*\}\s+(\d+)/mg;
	return $n;
}

# ---- a real worker ----

my $port = free_port();
my $base = "http://127.0.0.1:$port";
my $wpid = start_proc(name => 'worker', cmd => [$worker_bin, '--model', src('models/digits.safetensors'),
	'--listen', "127.0.0.1:$port", '--name', 'digits']);
ok(wait_http("$base/v2/health/ready", 30), 'the worker comes up ready')
	or BAIL_OUT('no worker: ' . slurp("$dir/worker.log"));

{
	my $before = served($base, 'infer');
	my $r = warm($base, '--model', 'digits', '--count', 4);
	is($r->{rc}, 0, 'warming a ready worker succeeds') or diag($r->{err});
	my @lines = grep { m{^\d+ POST /v2/models/digits/infer 200 [\d.]+ ms$} } split /\n/, $r->{out};
	is(scalar @lines, 4, 'it prints one line per request with its latency');
	like($r->{out}, qr/^ok: 4 requests in [\d.]+ ms \(first [\d.]+ ms, last [\d.]+ ms\)$/m,
		'it ends with a summary of the warmup');
	is(served($base, 'infer') - $before, 4, 'the worker saw exactly --count inference requests');
	my @ms = map { /([\d.]+) ms$/ ? $1 : () } @lines;
	note("warmup latencies against wakegate-worker: @ms ms");
}

{
	my $before = served($base, 'infer');
	my $r = warm("$base/v2/models/digits", '-q', '-c', 1);
	is($r->{rc}, 0, 'a URL ending in /v2/models/NAME names the model');
	is($r->{out}, '', '-q prints nothing on success');
	is(served($base, 'infer') - $before, 1, 'one request was sent with --count 1');
}

{
	my $before = served($base, 'infer');
	my $r = warm($base, '--model', 'digits', '--count', 2, '--until-stable');
	is($r->{rc}, 0, '--until-stable succeeds against a healthy worker') or diag($r->{err});
	my $n = () = $r->{out} =~ /^\d+ POST /mg;
	ok($n >= 3 && $n <= 20, "--until-stable sends at least 3 and at most 10 x count requests ($n)");
	is(served($base, 'infer') - $before, $n, 'every request it printed reached the worker');
}

{
	my $sample = decode_json(slurp(src('models/example.json')))->{input}[0];
	my $file = "$dir/infer.json";
	spew($file, encode_json({ inputs => [{ name => 'input', shape => [1, 64],
		datatype => 'FP32', data => $sample }] }));
	my $before = served($base, 'infer');
	my $r = warm($base, '--model', 'digits', '--request', $file, '-c', 2);
	is($r->{rc}, 0, 'a --request body file is POSTed as the warmup request') or diag($r->{err});
	is(served($base, 'infer') - $before, 2, 'the worker answered each --request POST');

	spew("$dir/predict.json", slurp(src('models/example.json')));
	$before = served($base, 'predict');
	$r = warm($base, '--path', '/predict', '--request', "$dir/predict.json", '-c', 3);
	is($r->{rc}, 0, '--path with --request warms any endpoint, no model needed') or diag($r->{err});
	like($r->{out}, qr{^3 POST /predict 200 }m, 'the lines name the path given');
	is(served($base, 'predict') - $before, 3, 'the requests went to that path');

	spew("$dir/bad.json", '{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}');
	$r = warm($base, '--model', 'digits', '--request', "$dir/bad.json");
	is($r->{rc}, 1, 'a body the worker rejects fails the warmup');
	like($r->{err}, qr{POST /v2/models/digits/infer: HTTP 400: .*shape}, 'the reason carries the worker\'s answer');
}

{
	my $r = warm($base, '--model', 'nosuch');
	is($r->{rc}, 1, 'an unknown model fails the warmup');
	like($r->{err}, qr{^wakegate-warmer: GET /v2/models/nosuch: HTTP 404}m, 'the reason names the request and the 404');
}

# ---- the library: many warmers on one loop, cancelled at awkward moments ----

my ($p500, $pid500) = fake_backend('500');
my ($phang, $pidhang) = fake_backend('hang');
{
	my $check = dirname($warmer) . '/warmer-check';
	my @urls = ($base, 'http://127.0.0.1:' . free_port(), "http://127.0.0.1:$p500", "http://127.0.0.1:$phang");
	my $out = `$check 60 @urls 2>&1`;
	is($?, 0, 'warmers that end or are cancelled at any moment end exactly once and leave nothing on the loop')
		or diag($out);
	my ($ok, $failed, $cancelled) = $out =~ /(\d+) ok, (\d+) failed, (\d+) cancelled/;
	ok(($ok // 0) > 0 && ($failed // 0) > 0 && ($cancelled // 0) > 0,
		'that run saw warmups succeed, fail and get cancelled') or diag($out);
}

stop_proc($wpid);

# ---- backends that fail ----

{
	my $p = free_port();
	my $r = warm("http://127.0.0.1:$p", '--model', 'digits', '--timeout', '30s');
	is($r->{rc}, 1, 'nothing listening fails the warmup');
	like($r->{err}, qr{GET /v2/models/digits: Connection refused}, 'the reason says the connection was refused');
	ok($r->{secs} < 10, 'a refused connection fails at once, not after the timeout');
}

{
	my $p = $p500;
	my $r = warm("http://127.0.0.1:$p", '--model', 'digits', '--count', 3);
	is($r->{rc}, 1, 'a backend that answers 500 fails the warmup');
	like($r->{err}, qr{^wakegate-warmer: POST /v2/models/digits/infer: HTTP 500: \{"error":"CUDA error: out of memory}m,
		'the reason names the request, the status and the body');
	my ($snippet) = $r->{err} =~ /HTTP 500: (.*)$/m;
	ok(length($snippet) <= 200, 'only the first 200 bytes of the body are shown');
	like($r->{out}, qr{^1 POST /v2/models/digits/infer 500 }m, 'the failing request is printed');
	unlike($r->{out}, qr{^2 POST}m, 'no request is sent after a failure');
	stop_proc($pid500);
}

{
	my $p = $phang;
	my $r = warm("http://127.0.0.1:$p", '--model', 'digits', '--timeout', '1s');
	is($r->{rc}, 1, 'a backend that never answers fails the warmup');
	like($r->{err}, qr{GET /v2/models/digits: warmup timed out after 1000 ms}, 'the reason says it timed out');
	ok($r->{secs} >= 0.9 && $r->{secs} < 15, sprintf('it gives up after about the timeout (%.2fs)', $r->{secs}));
	stop_proc($pidhang);
}

# ---- usage ----

{
	my $r = warm('http://127.0.0.1:1');
	is($r->{rc}, 2, 'no model and no --path/--request is bad usage');
	like($r->{err}, qr/no model/, 'it says what is missing');
	is(warm('http://127.0.0.1:1', '--model', 'digits', '--count', 0)->{rc}, 2, 'a count of 0 is bad usage');
	is(warm('http://127.0.0.1:1', '--model', 'digits', '--timeout', 'soon')->{rc}, 2, 'a bad timeout is bad usage');
	is(warm('http://127.0.0.1:1', '--model', 'digits', '--request', "$dir/missing.json")->{rc}, 2,
		'an unreadable --request file is bad usage');
	my $h = warm('-h');
	is($h->{rc}, 0, '-h succeeds');
	like($h->{out}, qr/--until-stable/, '-h lists the options');
}

done_testing();
