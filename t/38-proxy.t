# The proxy (gateway/proxy.c) through proxy-test, a standalone reverse proxy
# around it, in front of t/lib/backend.pl. PROXY_VALGRIND=1 runs every
# proxy-test under valgrind and fails on leaks and invalid accesses.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use HTTP::Tiny;
use JSON::PP qw(decode_json);
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time sleep);
use WG;

my $pt = ($ENV{WG_BUILD} // src('.')) . '/gateway/proxy-test';
plan skip_all => "no $pt: make check builds it" unless -x $pt;
my $valgrind = $ENV{PROXY_VALGRIND};
my $dir = tmpdir();

# backend
my $bport = free_port();
my $blog = "$dir/backend.log";
start_proc(name => 'backend', cmd => ['perl', src('t/lib/backend.pl'), '--port', $bport, '--log', $blog]);
ok(wait_until(sub { slurp($blog) =~ /^ready$/m }, 30), 'the test backend starts');

# proxy-test PORT HOST BACKEND_PORT connect_ms read_ms -> (pid, url, log)
my @procs;
sub proxy {
	my ($backend_port, $connect_ms, $read_ms) = @_;
	my $port = free_port();
	my $log = "$dir/proxy-$port.log";
	my @vg = $valgrind ? ('valgrind', '--quiet', '--error-exitcode=99', '--leak-check=full',
		'--errors-for-leak-kinds=definite,indirect', '--show-leak-kinds=definite,indirect') : ();
	my $pid = start_proc(name => "proxy-$port", log => $log,
		cmd => [@vg, $pt, $port, '127.0.0.1', $backend_port, $connect_ms, $read_ms]);
	my $url = "http://127.0.0.1:$port";
	wait_http("$url/__proxy_stats", 60) or BAIL_OUT("proxy-test did not start: " . slurp($log));
	push @procs, [$pid, $log];
	return ($pid, $url, $log, $port);
}

my ($ppid, $url, $plog, $pport) = proxy($bport, 5000, 10000);
my $ua = HTTP::Tiny->new(timeout => 30, keep_alive => 0);

sub backend_count { my ($re) = @_; my @l = grep { /$re/ } split /\n/, slurp($blog); return scalar @l }

# One raw HTTP exchange on a new connection; reads one answer (by
# Content-Length, chunked end, or EOF), or everything until EOF with
# all => 1. Returns (status, {lc header => value}, body).
sub raw {
	my ($port, $req, %o) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10) or die "connect: $!";
	print $s $req;
	my $buf = '';
	my $sel = IO::Select->new($s);
	my $end = time + ($o{timeout} // 30);
	while (time < $end) {
		next unless $sel->can_read(0.2);
		my $n = sysread($s, $buf, 65536, length $buf);
		last unless $n;
		next if $o{all};
		my ($head, $body) = split /\r\n\r\n/, $buf, 2;
		next unless defined $body;
		if ($head =~ /^Content-Length:\s*(\d+)/mi) { last if length($body) >= $1 }
		elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) { last if $body =~ /(^|\r\n)0\r\n\r\n$/ }
	}
	close $s;
	my ($head, $body) = split /\r\n\r\n/, $buf, 2;
	my @l = split /\r\n/, $head // '';
	my ($status) = (shift(@l) // '') =~ m{^HTTP/1\.\d (\d+)};
	my %h;
	for (@l) { my ($k, $v) = /^([^:]+):\s*(.*)$/ or next; $h{lc $k} = $v }
	return ($status // 0, \%h, $body // '');
}

# --- methods, URI and query -------------------------------------------------
{
	my $r = $ua->get("$url/echo?a=1&b=two%20words");
	is($r->{status}, 200, 'a GET through the proxy is answered 200');
	my $j = decode_json($r->{content});
	is($j->{uri}, '/echo?a=1&b=two%20words', 'the backend sees the path and the query unchanged');
	for my $m (qw(GET POST PUT DELETE OPTIONS PATCH)) {
		my $r2 = $ua->request($m, "$url/echo", { content => "body of $m" });
		my $j2 = $r2->{status} == 200 ? decode_json($r2->{content}) : {};
		is($j2->{method}, $m, "a $m request reaches the backend as $m");
		is($j2->{body_md5}, md5_hex("body of $m"), "the body of a $m request reaches the backend");
	}
	my $h = $ua->head("$url/echo");
	is($h->{status}, 200, 'a HEAD request is answered 200');
	is(length($h->{content} // ''), 0, 'a HEAD answer has no body');
}

# --- headers both ways --------------------------------------------------------
{
	my ($st, $h, $body) = raw($pport, "GET /echo HTTP/1.1\r\nHost: client.example\r\n"
		. "X-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive, X-Drop\r\nX-Drop: secret\r\n"
		. "Keep-Alive: 300\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nUpgrade: websocket\r\n"
		. "X-Custom: kept\r\nX-Request-Id: my-id-123\r\n\r\n");
	is($st, 200, 'a request with hop-by-hop headers is answered');
	my $bh = decode_json($body)->{headers};
	is($bh->{'x-custom'}, 'kept', 'an end-to-end header reaches the backend');
	ok(!exists $bh->{$_}, "the hop-by-hop header $_ does not reach the backend")
		for qw(x-drop keep-alive te proxy-authorization upgrade connection);
	is($bh->{host}, "127.0.0.1:$bport", 'the backend sees Host set to itself');
	is($bh->{'x-forwarded-for'}, '10.1.2.3, 127.0.0.1', 'X-Forwarded-For gets the client address appended');
	is($bh->{'x-forwarded-proto'}, 'http', 'X-Forwarded-Proto is http');
	is($bh->{'x-request-id'}, 'my-id-123', "the client's X-Request-Id is kept");
	is($h->{'x-request-id'}, 'my-id-123', 'the answer carries the same X-Request-Id');
	is($h->{'x-backend'}, 'yes', "the backend's own headers reach the client");
	ok(!exists $h->{$_}, "the backend's hop-by-hop header $_ does not reach the client")
		for qw(keep-alive proxy-agent x-secret);

	my $r = $ua->get("$url/echo");
	my $id = decode_json($r->{content})->{headers}{'x-request-id'} // '';
	like($id, qr/^[0-9a-f]{32}$/, 'a request without X-Request-Id gets 32 hex characters');
	is($r->{headers}{'x-request-id'}, $id, 'the generated request id comes back in the answer');
}

# --- an HTTP/1.0 client gets a streamed answer delimited by the close -------
{
	my ($st, $h, $body) = raw($pport, "GET /chunked?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", all => 1);
	is($body, "chunk 1\nchunk 2\nchunk 3\n", 'an HTTP/1.0 keep-alive client gets the whole streamed answer');
	is($h->{connection}, 'close', 'and the connection closes to mark its end');
}

# --- bodies of 1 MB both ways ------------------------------------------------
{
	my $up = join '', map { chr(($_ * 7) % 251) } 1 .. 1048576;
	my $r = $ua->post("$url/echo", { content => $up, headers => { 'Content-Type' => 'application/octet-stream' } });
	my $j = decode_json($r->{content});
	is($j->{body_len}, 1048576, 'a 1 MB request body reaches the backend whole');
	is($j->{body_md5}, md5_hex($up), 'the 1 MB request body arrives unchanged');

	my $pat = join '', map { sprintf "%07d\n", $_ } 0 .. 1023;
	my $want = substr($pat x 129, 0, 1048576);
	my $d = $ua->get("$url/big?size=1048576");
	is(length $d->{content}, 1048576, 'a 1 MB answer reaches the client whole');
	ok($d->{content} eq $want, 'the 1 MB answer arrives unchanged');

	my $c = $ua->get("$url/chunked?n=5");
	is($c->{content}, join('', map { "chunk $_\n" } 1 .. 5), 'a chunked answer is relayed piece by piece, whole');
}

# --- keep-alive to the backend -----------------------------------------------
{
	my $before = backend_count(qr/^accept$/);
	$ua->get("$url/echo?n=$_") for 1 .. 20;
	my $accepted = backend_count(qr/^accept$/) - $before;
	cmp_ok($accepted, '<=', 2, "20 requests one after another reuse kept-alive backend connections ($accepted new)");
}

# --- SSE arrives event by event -------------------------------------------------
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$pport", Timeout => 10) or die;
	print $s "GET /sse?n=4&ms=300 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	my ($buf, $first_at, $t0) = ('', undef, time);
	while (1) {
		my $n = sysread($s, $buf, 65536, length $buf);
		last unless $n;
		$first_at //= time - $t0 if $buf =~ /data: event 1\n/;
	}
	my $total = time - $t0;
	close $s;
	my @ev = $buf =~ /data: (event \d)/g;
	is_deeply(\@ev, [map { "event $_" } 1 .. 4], 'all SSE events arrive in order');
	ok(defined $first_at && $first_at < $total - 0.6,
		sprintf('the first SSE event arrives before the stream ends (%.2fs of %.2fs)', $first_at // -1, $total));
}

# --- a slow client does not make the proxy buffer the whole answer ----------
SKIP: {
	skip 'RSS is meaningless under valgrind', 2 if $valgrind;
	my $size = 32 * 1024 * 1024;
	my ($rss0) = slurp("/proc/$ppid/status") =~ /VmRSS:\s+(\d+)/;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$pport", Timeout => 10) or die;
	setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 65536);
	print $s "GET /big?size=$size HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	sleep 1;	# the backend writes as fast as it can; the client reads nothing
	my ($rss) = slurp("/proc/$ppid/status") =~ /VmRSS:\s+(\d+)/;
	cmp_ok($rss - $rss0, '<', 12 * 1024,
		"the proxy holds little of a 32 MB answer its client does not read (+@{[$rss - $rss0]} kB)");
	my ($got, $buf) = (0, '');
	while (1) { my $n = sysread($s, $buf, 1 << 20); last unless $n; $got += $n }
	close $s;
	cmp_ok($got, '>', $size, 'the slow client still gets the whole 32 MB answer');
}

# --- backend failures ----------------------------------------------------------
for my $case (['/garbage', 'a backend that answers garbage'],
	['/close-mid-headers', 'a backend that closes in the middle of the headers'],
	['/close-no-answer', 'a backend that closes without answering'],
	['/huge-header', 'a backend that sends a 200 KB header']) {
	my ($path, $what) = @$case;
	my $r = $ua->get("$url$path");
	is($r->{status}, 502, "$what gets a 502");
	like($r->{content}, qr/^\{"error":"upstream 127\.0\.0\.1:\d+: [^"]+"\}/, "the 502 for $what says why in JSON");
	is($r->{headers}{'content-type'}, 'application/json', "the 502 for $what is application/json");
}
{
	# with a large body the proxy reads an early answer after a failed write,
	# where libevent 2.1.12 would otherwise wait forever on a cut header
	my $r = $ua->post("$url/close-mid-headers", { content => 'x' x 200000 });
	is($r->{status}, 502, 'a backend that closes in the middle of the headers of an answer to a large body gets a 502');
}
{
	my ($st, $h, $body) = raw($pport, "GET /close-mid-body HTTP/1.1\r\nHost: x\r\n\r\n", all => 1);
	is($st, 200, 'a backend that dies mid-body has already sent its status');
	ok(length($body) < 1000, 'the client sees the connection closed before the promised 1000 bytes');
	ok(wait_until(sub { slurp($plog) =~ /done status=502 client_gone=0 bytes=100 /m }, 10),
		'the proxy reports 502 for a body cut short');
}
{
	my $r = $ua->post("$url/reject-early", { content => 'x' x (8 * 1024 * 1024) });
	is($r->{status}, 413, "a backend's early answer to a body it will not read reaches the client");
	is($r->{content}, 'too large', 'with its body');
}
{
	my (undef, $surl) = proxy($bport, 2000, 1000);	# a short read timeout
	my $r = $ua->get("$surl/never");
	is($r->{status}, 504, 'a backend that never answers gets a 504 after the read timeout');
	like($r->{content}, qr/read timed out after 1000ms/, 'the 504 says the read timed out');
	ok(wait_until(sub { backend_count(qr{^closed-by-peer /never}) >= 1 }, 30),
		'the backend sees its connection closed after the timeout');
}
{
	my $dead = free_port();
	my (undef, $durl) = proxy($dead, 2000, 2000);
	my $r = $ua->get("$durl/echo");
	is($r->{status}, 502, 'a backend that refuses connections gets a 502');
	like($r->{content}, qr/connect/, 'the 502 says the connect failed');
}
{
	my $fport = free_port();
	my $flog = "$dir/full.log";
	start_proc(name => 'full-backend', cmd => ['perl', src('t/lib/backend.pl'), '--port', $fport, '--log', $flog, '--full']);
	wait_until(sub { slurp($flog) =~ /full/ }, 30);
	my (undef, $furl) = proxy($fport, 500, 5000);
	my $r = $ua->get("$furl/echo");
	is($r->{status}, 504, 'a backend that does not accept connections gets a 504 after the connect timeout');
	like($r->{content}, qr/connect timed out after 500ms/, 'the 504 says the connect timed out');
}

# --- clients that leave ------------------------------------------------------------
{
	my $before = backend_count(qr{^closed-by-peer /sse});
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$pport", Timeout => 10) or die;
	print $s "GET /sse?n=200&ms=50 HTTP/1.1\r\nHost: x\r\n\r\n";
	my $buf = '';
	sysread($s, $buf, 65536, length $buf) until $buf =~ /data: event 1\n/;
	close $s;
	ok(wait_until(sub { backend_count(qr{^closed-by-peer /sse}) > $before }, 30),
		'a client that leaves mid-stream closes the stream at the backend');
	ok(wait_until(sub { slurp($plog) =~ /done status=200 client_gone=1/ }, 10),
		'the proxy reports the client gone mid-stream');

	for my $m ('GET', 'POST') {
		my $n0 = backend_count(qr{^closed-by-peer /never});
		my $s2 = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$pport", Timeout => 10) or die;
		print $s2 $m eq 'POST' ? "POST /never HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
			: "GET /never HTTP/1.1\r\nHost: x\r\n\r\n";
		wait_until(sub { backend_count(qr{^request $m /never}) > 0 }, 10);
		sleep 0.3;
		close $s2;
		ok(wait_until(sub { backend_count(qr{^closed-by-peer /never}) > $n0 }, 30),
			"a $m client that leaves before the answer closes the request at the backend");
	}
	like(slurp($plog), qr/done status=0 client_gone=1/, 'the proxy reports status 0 for a client gone before the answer');
	is($ua->get("$url/echo")->{status}, 200, 'the proxy still answers after clients left');
}

# --- pipelined requests ----------------------------------------------------------------
{
	my ($st, $h, $body) = raw($pport, "GET /slow-headers?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n"
		. "GET /echo?second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", all => 1);
	is($st, 200, 'the first of two pipelined requests is answered');
	like($body, qr{^slow\n.*HTTP/1\.1 200.*"uri":"/echo\?second"}s, 'the second pipelined request is answered after the first');
}

# --- a kept-alive backend connection that dies as it is reused ------------------
{
	is($ua->get("$url/then-close?ms=1000")->{content}, "bye\n", 'a backend that will close its kept-alive connection answers');
	my $r = $ua->get("$url/echo?after-close");
	is($r->{status}, 200, 'a request sent on a kept-alive connection the backend then drops is retried and answered');
	like(slurp($plog), qr/closed a kept-alive connection; retrying/, 'the proxy says it retried on a new connection');
}

# --- many at once --------------------------------------------------------------------------
{
	my $before = backend_count(qr/^accept$/);
	my @urls = map { "$url/slow-headers?ms=300&i=$_" } 1 .. 50;
	open(my $fh, '-|', 'curl', '-s', '--parallel', '--parallel-max', '50', '-w', '%{http_code}\n',
		map { ($_, '-o', '/dev/null') } @urls) or die "curl: $!";
	my @codes = map { chomp; $_ } <$fh>;
	close $fh;
	is(scalar(grep { $_ eq '200' } @codes), 50, '50 requests in parallel are all answered 200');
	cmp_ok(backend_count(qr/^accept$/) - $before, '>', 1, 'requests in flight together use several backend connections');
}

my $st = decode_json($ua->get("$url/__proxy_stats")->{content});

# --- shutdown with a stream in flight: the pool fails it, frees everything ----
my $inflight = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$pport", Timeout => 10) or die;
print $inflight "GET /sse?n=200&ms=50 HTTP/1.1\r\nHost: x\r\n\r\n";
{
	my $buf = '';
	sysread($inflight, $buf, 65536, length $buf) until $buf =~ /data: event 1\n/;
}
is($st->{active}, 0, 'every forward has finished');
is($st->{done}, $st->{forwards}, 'every forward called its done callback once');

for my $p (@procs) {
	my ($pid, $log) = @$p;
	my $rc = stop_proc($pid, 'TERM', $valgrind ? 60 : 10);
	is($rc, 0, 'proxy-test exits cleanly' . ($valgrind ? ' under valgrind (no leaks, no invalid accesses)' : ''))
		or diag(slurp($log));
}

{
	my $rest = '';
	1 while sysread($inflight, $rest, 65536, length $rest);
	unlike($rest, qr/\r\n0\r\n\r\n/, 'a stream cut by shutdown ends without the last chunk, so the client can tell');
}

done_testing();
