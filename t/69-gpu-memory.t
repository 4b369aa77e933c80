# Many models on one GPU (wakegate.conf(5): gpu, gpu_memory, pin, priority,
# model, route models): three models of 4g and a pinned one of 2g on a
# device of 10g, real workers, requests routed by model name (KServe path,
# X-Model header, OpenAI body); the memory declared in use never exceeds the
# device, an idle replica is evicted for another, a pinned one never is, a
# higher priority evicts a lower one and not the reverse, a stream in flight
# is never cut by an eviction, the model lists answer while cold.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $port = free_port();
my $admin = free_port();
my $worker = bin('wakegate-worker');
my $model = src('models/digits.safetensors');
my $backend = src('t/lib/test-backend.pl');
sub wk { my ($n) = @_; return "$worker --model $model --listen 127.0.0.1:\$port --name $n" }
my $text = <<"EOC";
daemon off;
error_log $dir/error-$port.log info;
admin_listen 127.0.0.1:$admin;
gpu gpu0 memory=10g;
upstream a { launch exec "@{[wk('a')]}"; gpu_memory 4g; idle_timeout 60s; stop_grace 2s; }
upstream b { launch exec "@{[wk('b')]}"; gpu_memory 4g; idle_timeout 60s; stop_grace 2s; }
upstream c { launch exec "@{[wk('c')]}"; gpu_memory 4g; idle_timeout 60s; stop_grace 2s; model c chat-c; }
upstream p { launch exec "@{[wk('p')]}"; gpu_memory 2g; idle_timeout 60s; pin; }
upstream s { launch exec "exec perl $backend \$port"; gpu_memory 4g; warmup off; idle_timeout 60s; model stream; }
server {
	listen 127.0.0.1:$port;
	location / { route models; }
}
EOC
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my ($body) = digits_input(3);
my $sample = decode_json($body)->{input}[0];

sub infer {
	my ($m, %o) = @_;
	my $j = encode_json({ inputs => [{ name => 'input', shape => [1, 64], datatype => 'FP32', data => $sample }] });
	return http_post("$g->{url}/v2/models/$m/infer", $j, timeout => $o{timeout} // 60);
}
sub st { return gw_status($g) }
sub ustate { return st()->{upstreams}{$_[0]}{state} // '' }
sub used { my $d = (st()->{gpus} // [])->[0] // {}; return ($d->{used} // -1, $d->{memory} // 0) }

# --- the lists answer while cold, nothing is woken --------------------------------------
my $r = http_get("$g->{url}/v1/models");
is($r->{status}, 200, 'GET /v1/models answers while every model is cold');
my $list = decode_json($r->{content});
is_deeply([sort map { $_->{id} } @{ $list->{data} }], [sort qw(a b c chat-c p stream)], 'it lists every model name, aliases too');
is((grep { $_->{state} ne 'stopped' } @{ $list->{data} }), 0, 'all stopped');
$r = http_get("$g->{url}/v2/models");
is(scalar(@{ decode_json($r->{content})->{models} }), 6, 'GET /v2/models lists them too');
$r = http_get("$g->{url}/v2/models/a");
is(decode_json($r->{content})->{state}, 'stopped', "a cold model's metadata comes from the gateway, state stopped");
is(scalar(gw_children($g->{pid})), 0, 'and nothing was started');

# --- unknown and missing model names ------------------------------------------------------
$r = http_post("$g->{url}/v1/chat/completions", encode_json({ model => 'nope', messages => [] }));
is($r->{status}, 404, 'an unknown model in an OpenAI body gets 404');
is(decode_json($r->{content})->{error}{code}, 'model_not_found', 'with an OpenAI-shaped error');
$r = infer('nope');
is($r->{status}, 404, 'an unknown model in a KServe path gets 404');
like(decode_json($r->{content})->{error}, qr/model "nope" not found/, 'with a KServe-shaped error');
$r = http_post("$g->{url}/predict", $body);
is($r->{status}, 400, 'no model named at all gets 400');

# --- routing, placement and eviction -------------------------------------------------------
$r = infer('a');
is($r->{status}, 200, 'a request to model a is answered');
is(decode_json($r->{content})->{model_name}, 'a', 'by model a');
$r = http_post("$g->{url}/predict", $body, headers => { 'X-Model' => 'b' });
is($r->{status}, 200, 'X-Model: b routes to b');
$r = http_post("$g->{url}/v1/completions", encode_json({ model => 'chat-c', prompt => 'x' }));
unlike($r->{content}, qr/model_not_found/, 'an OpenAI body naming the alias chat-c is routed (to c, whose worker has no /v1: its own 404)');
ok(wait_until(sub { ustate('c') eq 'READY' }, 30), 'c is READY');
ok(wait_until(sub { ustate('a') eq 'STOPPED' }, 30), 'a, the least recently used idle model, was evicted for c');
my $rep_a = st()->{upstreams}{a}{replicas}[0];
like(gw_log($g), qr/upstream "a" replica 0: READY -> DRAINING \(evicted for "c" on gpu gpu0: least recently used/,
	'the log says a was evicted for c, and how it was chosen');
my ($u, $m) = used();
is($m, 10 * 1024**3, '/status shows the device of 10g');
is($u, 8 * 1024**3, 'with 8g in use (b and c)');

# --- concurrent mixed traffic: never over the device, every answer from its own model ----------
is(infer('p')->{status}, 200, 'the pinned model p is answered');
my $sampler = fork // die;
if (!$sampler) {
	my ($over, $n, $maxproc) = (0, 0, 0);
	my $end = time + 14;
	while (time < $end) {
		my ($used, $mem) = used();
		$over++ if $used > $mem;
		# the workers themselves (the launch's /bin/sh -c stays as their parent)
		my $procs = grep { (slurp("/proc/$_/comm") // '') =~ /^wakegate-worke/ } gw_children($g->{pid});
		$maxproc = $procs if $procs > $maxproc;
		$n++;
		sleep 0.05;
	}
	open my $f, '>', "$dir/sampler" or die; print $f "$over $n $maxproc\n"; close $f;
	POSIX::_exit(0);
}
my @kids;
for my $k (0 .. 3) {
	my $pid = fork // die;
	if (!$pid) {
		my ($bad, $n) = (0, 0);
		my $end = time + 10;
		my @ms = qw(a b c p);
		while (time < $end) {
			my $want = $ms[($k + $n) % 4];
			my $x = infer($want, timeout => 60);
			my $got = eval { decode_json($x->{content})->{model_name} } // '';
			$bad++ unless $x->{status} == 200 && $got eq $want;
			$n++;
		}
		open my $f, '>', "$dir/client$k" or die; print $f "$bad $n\n"; close $f;
		POSIX::_exit(0);
	}
	push @kids, $pid;
}
waitpid($_, 0) for @kids, $sampler;
my ($bad, $n) = (0, 0);
for my $k (0 .. 3) { my ($b1, $n1) = split ' ', slurp("$dir/client$k"); $bad += $b1; $n += $n1 }
cmp_ok($n, '>=', 8, "4 clients sent $n requests across 4 models");
is($bad, 0, 'every one answered 200 by the model it named');
my ($over, $samples, $maxproc) = split ' ', slurp("$dir/sampler");
cmp_ok($samples, '>', 20, "memory sampled $samples times");
is($over, 0, 'the memory in use never exceeded the device (by /status)');
cmp_ok($maxproc, '<=', 3, "at most 3 worker processes lived at once (2 of 4g and the pinned 2g fill 10g): $maxproc");
unlike(gw_log($g), qr/upstream "p" replica 0: READY -> (DRAINING|ASLEEP)/, 'the pinned model was never evicted');
is(ustate('p'), 'READY', 'and is still READY');
my $met = http_get("$g->{admin_url}/metrics")->{content};
like($met, qr/wakegate_evictions_total\{upstream="[abc]",cause="gpu_memory"\} [1-9]/, 'evictions are counted');
like($met, qr/wakegate_gpu_memory_bytes\{gpu="gpu0",kind="declared"\} 10737418240/, 'the device is a gauge');

# --- a stream in flight is never cut; the model waiting for its memory comes after -------------
# make room for s: only p and two of a/b/c fit; s needs 4g
ok(wait_until(sub { my ($x) = used(); $x <= 10 * 1024**3 }, 5), 'settled');
my $t0 = time;
my $spid = fork // die;
if (!$spid) {
	my $x = http_get("$g->{url}/sse?n=16&ms=250", headers => { 'X-Model' => 'stream' }, timeout => 60);
	my @ev = $x->{content} =~ /^data: event (\d+)$/mg;
	open my $f, '>', "$dir/stream" or die; print $f $x->{status} . ' ' . scalar(@ev) . "\n"; close $f;
	POSIX::_exit(0);
}
ok(wait_until(sub { ustate('stream') eq 'READY' || ustate('s') eq 'READY' }, 30), 'the stream model s is up');
# every 4g model now asks: whatever is idle may go, s (in flight) may not
my @others;
for my $mname (qw(a b c)) {
	my $pid = fork // die;
	if (!$pid) { my $x = infer($mname, timeout => 60); POSIX::_exit($x->{status} == 200 ? 0 : 1) }
	push @others, $pid;
}
waitpid($spid, 0);
my ($sst, $sev) = split ' ', slurp("$dir/stream");
is($sst, 200, 'the stream is answered 200');
is($sev, 16, 'all 16 events arrived: no eviction cut it');
my $okc = 0;
for (@others) { waitpid($_, 0); $okc++ if $? == 0 }
is($okc, 3, 'the requests that needed its memory were answered after it');
ok(time - $t0 >= 3.5, 'the stream really lasted its 4s');

# --- priorities: a higher one evicts a lower one, not the reverse ---------------------------
my $port2 = free_port();
my $admin2 = free_port();
my $text2 = <<"EOC";
daemon off;
error_log $dir/error-$port2.log info;
admin_listen 127.0.0.1:$admin2;
gpu g memory=4g;
upstream lo { launch exec "@{[wk('lo')]}"; gpu_memory 4g; idle_timeout 60s; hold 100 timeout=3s; }
upstream hi { launch exec "@{[wk('hi')]}"; gpu_memory 4g; idle_timeout 60s; hold 100 timeout=3s; priority 2; }
server {
	listen 127.0.0.1:$port2;
	location / { route models; }
}
EOC
my $g2 = gw_start(conf => $text2, port => $port2, admin => $admin2);
sub infer2 {
	my ($m) = @_;
	my $j = encode_json({ inputs => [{ name => 'input', shape => [1, 64], datatype => 'FP32', data => $sample }] });
	return http_post("$g2->{url}/v2/models/$m/infer", $j, timeout => 60);
}
sub st2 { return gw_status($g2)->{upstreams}{$_[0]}{state} // '' }
is(infer2('hi')->{status}, 200, 'priority 2 is up');
$r = infer2('lo');
is($r->{status}, 503, 'priority 0 does not evict priority 2: it waits, then gets 503 after its hold timeout');
like($r->{content}, qr/waiting for GPU memory/, 'and the answer says it waited for GPU memory');
is(st2('hi'), 'READY', 'priority 2 is still READY');
# the reverse: lo up, hi evicts it
http_post("$g2->{admin_url}/upstreams/hi/sleep", '');
ok(wait_until(sub { st2('hi') eq 'STOPPED' }, 20), 'priority 2 stopped by the admin API');
is(infer2('lo')->{status}, 200, 'now priority 0 starts');
$r = infer2('hi');
is($r->{status}, 200, 'priority 2 evicts the idle priority 0 and is answered');
like(gw_log($g2), qr/upstream "lo" replica 0: READY -> DRAINING \(evicted for "hi"/, 'the log shows lo evicted for hi');
my $mem = gw_status($g2)->{upstreams}{hi}{gpu_memory};
is($mem->{declared}, 4 * 1024**3, '/status shows the gpu_memory declared');
ok(defined $mem->{measured} && $mem->{measured} > 0 && $mem->{measured} < 4 * 1024**3,
	'and what the worker says its model takes (under the declared 4g: no warning)');
unlike(gw_log($g2), qr/more than the gpu_memory/, 'no warning when the model fits what is declared');

# a model that takes more than its upstream declares: one warning
my $port3 = free_port();
my $admin3 = free_port();
my $g3 = gw_start(port => $port3, admin => $admin3, conf => <<"EOC");
daemon off;
error_log $dir/error-$port3.log info;
admin_listen 127.0.0.1:$admin3;
gpu g memory=4g;
upstream w { launch exec "@{[wk('w')]}"; gpu_memory 1k; }
server { listen 127.0.0.1:$port3; location / { route models; } }
EOC
my $j = encode_json({ inputs => [{ name => 'input', shape => [1, 64], datatype => 'FP32', data => $sample }] });
is(http_post("$g3->{url}/v2/models/w/infer", $j, timeout => 60)->{status}, 200, 'a model declared at 1k is answered');
ok(wait_until(sub { gw_log($g3) =~ /upstream "w": its model takes \d+ bytes, more than the gpu_memory 1024 it declares/ }, 10),
	'and the gateway warns that it takes more than declared, as its worker measures it');
unlike(gw_log($g) . gw_log($g2), qr/refused move/, 'no move outside the move table');

done_testing;
