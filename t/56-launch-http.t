# launch http: start and stop webhooks. A small webhook server (below, in
# Perl) records every request it gets and answers what the test plans for
# it; on a 2xx to /start it runs a real wakegate-worker, on a 2xx to /stop
# it kills it. The gateway POSTs JSON with a bearer token re-read from its
# file at each call, retries transport errors and 5xx (3 tries), and gives
# up at once on other errors.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my ($body, $label) = digits_input(4);
my $hport = free_port();
my $wport = free_port();

spew("$dir/webhook.pl", <<'EOS');
# webhook.pl PORT DIR WORKER-CMD...: one request a connection; plans in DIR/plan-start, DIR/plan-stop
use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(setsid :sys_wait_h);
use JSON::PP;
my ($port, $dir, @worker) = @ARGV;
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 16, ReuseAddr => 1)
	or die "listen: $!";
my $wpid;
$SIG{TERM} = sub { kill 'TERM', $wpid if $wpid; exit 0 };
sub next_code {
	my ($f) = @_;
	open my $fh, '<', $f or return 200;
	my @l = <$fh>;
	close $fh;
	my $c = shift @l // 200;
	open $fh, '>', $f or die;
	print $fh @l;
	close $fh;
	chomp $c;
	return $c;
}
while (my $c = $srv->accept) {
	waitpid(-1, WNOHANG);
	my $head = '';
	while (defined(my $l = <$c>)) { $head .= $l; last if $l eq "\r\n" }
	my ($method, $path) = $head =~ /^(\S+) (\S+)/ or next;	# a probe that only connected
	my %h;
	$h{ lc $1 } = $2 while $head =~ /^([\w-]+): ([^\r\n]*)/mg;
	my $body = '';
	read($c, $body, $h{'content-length'}) if $h{'content-length'};
	my $action = $path =~ m{/(start|stop)$} ? $1 : 'other';
	my $code = next_code("$dir/plan-$action");
	open my $log, '>>', "$dir/requests" or die;
	print $log encode_json({ method => $method, path => $path, auth => $h{authorization} // '',
		type => $h{'content-type'} // '', body => $body, code => $code }), "\n";
	close $log;
	if ($code =~ /^2/ && $action eq 'start' && !$wpid) {
		$wpid = fork // die;
		if (!$wpid) { setsid(); open STDOUT, '>>', "$dir/worker.log"; open STDERR, '>&', \*STDOUT; exec @worker; exit 127 }
		open my $p, '>', "$dir/worker.pid"; print $p $wpid; close $p;
	} elsif ($code =~ /^2/ && $action eq 'stop' && $wpid) {
		kill 'TERM', $wpid;
		waitpid($wpid, 0);
		$wpid = undef;
	}
	my $out = $code =~ /^2/ ? encode_json({ ok => JSON::PP::true })
		: encode_json({ message => $code == 401 ? 'bad token' : 'the control plane is busy' });
	print $c "HTTP/1.1 $code X\r\nContent-Type: application/json\r\nContent-Length: " . length($out)
		. "\r\nConnection: close\r\n\r\n$out";
	close $c;
}
EOS

my $hook = start_proc(name => 'webhook', cmd => ['perl', "$dir/webhook.pl", $hport, $dir,
	bin('wakegate-worker'), '--model', src('models/digits.safetensors'), '--listen', "127.0.0.1:$wport", '--name', 'digits']);
ok(wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$hport") }, 30), 'the webhook server is up');

spew("$dir/token", "s3cret\n");
my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 2s; stop_grace 2s; hold 10 timeout=60s;');
$text =~ s{launch exec "[^\n]*";}{launch http start=http://127.0.0.1:$hport/hooks/start stop=http://127.0.0.1:$hport/hooks/stop url=http://127.0.0.1:$wport token_file=$dir/token;} or die;
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub state_of { return gw_status($g)->{upstreams}{digits}{state} // '' }
sub requests { return [ map { decode_json($_) } grep { /\S/ } split /\n/, slurp("$dir/requests") ] }
sub worker_pid { my $p = slurp("$dir/worker.pid"); chomp $p; return $p }

# 1. a full cold start and idle stop
my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the first request is answered by the worker the start webhook launched');
is(argmax_of($r->{content}), $label, 'with the right digit');
my $q = requests();
is(scalar @$q, 1, 'the gateway called one webhook');
is($q->[0]{method}, 'POST', 'it is a POST');
is($q->[0]{path}, '/hooks/start', 'to the start URL');
is($q->[0]{type}, 'application/json', 'with a JSON body');
is($q->[0]{auth}, 'Bearer s3cret', 'and the token from token_file as a bearer token');
is_deeply(decode_json($q->[0]{body}), { upstream => 'digits', action => 'start', url => "http://127.0.0.1:$wport" },
	'the body names the upstream, the action and the url');
my $wpid = worker_pid();
ok(wait_until(sub { state_of() eq 'STOPPED' }, 30), 'after idle_timeout the replica is STOPPED');
$q = requests();
is($q->[-1]{path}, '/hooks/stop', 'the stop webhook was called');
is(decode_json($q->[-1]{body})->{action}, 'stop', 'with action stop');
ok(wait_until(sub { !kill(0, $wpid) }, 10), 'the worker is gone');
like(gw_log($g), qr/DRAINING -> STOPPED \(stopped through the http launcher after [\d.]+s up\)/,
	'the log says the http launcher stopped it');

# 2. 5xx twice, then 200: the start is retried; a new token is read at once
spew("$dir/plan-start", "503\n502\n");
spew("$dir/token", "n3w-token\n");
$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'a start webhook that fails twice with 5xx and then succeeds still answers the request');
$q = requests();
my @starts = grep { $_->{path} eq '/hooks/start' } @$q;
is(scalar @starts, 4, 'the start webhook was tried three times this time');
is(join(',', map { $_->{code} } @starts[1 .. 3]), '503,502,200', 'it got 503, 502, then 200');
is($starts[-1]{auth}, 'Bearer n3w-token', 'the token file is read again at each call');
like(gw_log($g), qr/http launcher: POST http:\S+\/hooks\/start: HTTP 503, try 1 of 3/, 'the log shows the retries');
ok(wait_until(sub { state_of() eq 'STOPPED' }, 30), 'it is stopped again when idle');

# 3. 401: no retry, the held request gets a 503 with the reason
spew("$dir/plan-start", "401\n");
my $n = @{ requests() };
my $t0 = time;
$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 503, 'a start webhook answering 401 gets the held request a 503');
ok(time - $t0 < 20, 'at once, not after the hold timeout');
like($r->{content}, qr{upstream \\?"digits\\?": http launcher: POST http://127\.0\.0\.1:$hport/hooks/start: HTTP 401: bad token},
	'the 503 names the webhook, the status and its message');
is(scalar @{ requests() }, $n + 1, 'a 4xx is not retried');
like(gw_log($g), qr{upstream "digits": http launcher: POST http://127\.0\.0\.1:$hport/hooks/start: HTTP 401},
	'the log names the upstream, the webhook and the status');
is(state_of(), 'FAILED', '/status shows FAILED');

# 4. 5xx on every try
sleep 1.5;	# the backoff after the first failure is 1s
spew("$dir/plan-start", "503\n503\n503\n");
$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 503, 'a start webhook failing three times with 503 gets the held request a 503');
like($r->{content}, qr{http launcher: POST http://127\.0\.0\.1:$hport/hooks/start: HTTP 503 \(after 3 tries\)},
	'the 503 says it was tried three times');
like(gw_log($g), qr{upstream "digits": http launcher: POST \S+: HTTP 503 \(after 3 tries\)}, 'and so does the log');

stop_proc($g->{pid}, 'TERM', 30);

# 5. url= is where the gateway itself talks to the replica: no path; https:// means TLS (t/65-tls.t)
{
	my ($t2, $p2, $a2) = gw_conf(upstream => 'hold 10 timeout=60s;');
	(my $bad = $t2) =~ s{launch exec "[^\n]*";}{launch http start=http://127.0.0.1:$hport/hooks/start stop=http://127.0.0.1:$hport/hooks/stop url=http://127.0.0.1:$wport/v2;} or die;
	spew("$dir/bad.conf", $bad);
	my $out = `@{[bin('wakegate')]} -t -p $dir -c $dir/bad.conf 2>&1`;
	isnt($?, 0, 'wakegate -t refuses a url= with a path');
	like($out, qr{invalid url "http://127\.0\.0\.1:$wport/v2" in "launch" directive \(http://HOST\[:PORT\], no path}, 'and says what a url= may be');
	$t2 =~ s{launch exec "[^\n]*";}{launch http start=http://127.0.0.1:$hport/hooks/start stop=http://127.0.0.1:$hport/hooks/stop url=https://127.0.0.1:$wport;} or die;
	my $g2 = gw_start(conf => $t2, port => $p2, admin => $a2);
	$r = gw_predict($g2, $body, timeout => 60);
	is($r->{status}, 503, 'an https url= to a worker that speaks plain HTTP: the held request gets a 503');
	like($r->{content}, qr/https:\/\/127\.0\.0\.1:$wport: TLS handshake failed \(wrong version number\)/,
		'which says the replica does not speak TLS');
	stop_proc($g2->{pid}, 'TERM', 30);
}

stop_proc($hook, 'TERM', 10);
done_testing;
