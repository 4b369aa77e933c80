# Request framing as strict as nginx 1.22 where evhttp is loose (man
# wakegate.8, HTTP STRICTNESS): each request below is refused with nginx's
# status and the connection closed, and no request hidden in it ever
# reaches the backend, which logs every byte it gets. Well-formed requests
# (pipelined, chunked, HTTP/1.0) still pass.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGRaw;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

my $H = "Host: x\r\n";
my $smug = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n";
my ($r, $closed) = raw_exchange($port, "GET /warm HTTP/1.1\r\n$H\r\n", quiet => 60);
like($r, qr/^HTTP\/1\.1 200/, 'a plain request is answered (the backend is up)');

my @refused = (
	['two different Content-Length', 400, "POST /c HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: " . length($smug) . "\r\n\r\n$smug"],
	['two equal Content-Length', 400, "POST /c HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"],
	['Content-Length: +3', 400, "POST /c HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc"],
	['chunk size 0x3', 400, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n$smug"],
	['chunk size +3', 400, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n"],
	['chunk size with a leading space', 400, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n"],
	['Transfer-Encoding: gzip', 501, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n$smug"],
	['Transfer-Encoding: gzip, chunked', 501, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
	['Transfer-Encoding in HTTP/1.0', 400, "POST /c HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
	['a space before the colon', 400, "POST /c HTTP/1.1\r\n${H}Content-Length: 0\r\nTransfer-Encoding : chunked\r\n\r\n"],
	['a header name with a space', 400, "GET /c HTTP/1.1\r\n${H}Foo Bar: x\r\n\r\n"],
	['an empty header name', 400, "GET /c HTTP/1.1\r\n$H: x\r\n\r\n"],
	['a control byte in a header name', 400, "GET /c HTTP/1.1\r\n${H}Fo\x01o: x\r\n\r\n"],
	['a folded header line', 400, "GET /c HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n"],
	['a NUL in a header value', 400, "GET /c HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n"],
	['a space in the target', 400, "GET /c d HTTP/1.1\r\n$H\r\n"],
	['a control byte in the target', 400, "GET /c\x01d HTTP/1.1\r\n$H\r\n"],
	['a target without a leading slash', 400, "GET c HTTP/1.1\r\n$H\r\n"],
	['HTTP/1.1 without Host', 400, "GET /c HTTP/1.1\r\n\r\n"],
	['two Host headers', 400, "GET /c HTTP/1.1\r\n${H}Host: y\r\n\r\n"],
	['a Host with a slash', 400, "GET /c HTTP/1.1\r\nHost: x/y\r\n\r\n"],
	['a path above the root', 400, "GET /../c HTTP/1.1\r\n$H\r\n"],
	['chunk size zz (400, not evhttp\'s 413)', 400, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"],
	['chunk data longer than its size', 400, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n$smug"],
	['a chunk size of 17 hex digits', 400, "POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n"],
);
for my $c (@refused) {
	my ($name, $code, $bytes) = @$c;
	($r, $closed) = raw_exchange($port, $bytes);
	is(statuses($r), $code, "$name: $code, as nginx");
	ok($closed, "  and the connection is closed after it");
}
my @seen = backend_log($blog);
is(scalar(grep { /^REQ \d+ \S+ \/c\b/ } @seen), 0, 'none of the refused requests reached the backend');
is(scalar(grep { /SMUGGLED/ } @seen), 0, 'nor any request hidden in them');
like(gw_log($g), qr/client sent two Content-Length headers; answered 400/, 'the error log says what the client sent');

# a HEAD with a body, as nginx: framed by its Content-Length, discarded,
# and the connection kept (evhttp alone parses the body as the next request)
($r, $closed) = raw_exchange($port, "HEAD /head HTTP/1.1\r\n${H}Content-Length: " . length($smug) . "\r\n\r\n${smug}GET /after-head HTTP/1.1\r\n$H\r\n");
is(statuses($r), '200,200', 'a HEAD with a body and a GET after it: two answers, as nginx');
ok(!$closed, '  and the connection stays open, as nginx');
@seen = backend_log($blog);
is(scalar(grep { /SMUGGLED/ } @seen), 0, '  the request in its body never reaches the backend');
is(scalar(grep { /^REQ \d+ HEAD \/head body=0 / } @seen), 1, '  the HEAD itself does, without the body');
is(scalar(grep { /^REQ \d+ GET \/after-head / } @seen), 1, '  and so does the GET after it');

# the same with the body in a later read than the head (cut as it comes)
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10) or die "connect: $!";
	local $SIG{PIPE} = 'IGNORE';
	syswrite($s, "HEAD /head2 HTTP/1.1\r\n${H}Content-Length: " . length($smug) . "\r\n\r\n" . substr($smug, 0, 10));
	my $sel = IO::Select->new($s);
	my $got = '';
	# the HEAD's answer first: the rest of its body comes after it
	while ($got !~ /\r\n\r\n/ && $sel->can_read(30)) {
		sysread($s, my $b, 65536) or last;
		$got .= $b;
	}
	syswrite($s, substr($smug, 10) . "GET /after-head2 HTTP/1.1\r\n$H\r\n");
	my $t0 = time;
	while ((() = $got =~ /HTTP\/1\.1 \d{3}/g) < 2 && time - $t0 < 30) {
		next unless $sel->can_read(0.1);
		sysread($s, my $b, 65536) or last;
		$got .= $b;
	}
	close $s;
	is(statuses($got), '200,200', 'a HEAD whose body comes after its answer: the GET after the body is answered');
	@seen = backend_log($blog);
	is(scalar(grep { /SMUGGLED/ } @seen), 0, '  and no byte of the body was parsed as a request');
	is(scalar(grep { /^REQ \d+ GET \/after-head2 / } @seen), 1, '  the GET reached the backend');
}

# a chunked body on a HEAD: nginx reads and drops it; the gateway closes after the answer
($r, $closed) = raw_exchange($port, "HEAD /head3 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n" .
	sprintf('%x', length $smug) . "\r\n$smug\r\n0\r\n\r\n");
is(statuses($r), '200', 'a HEAD with a chunked body is answered once');
ok($closed, '  and the connection closed, so its body is never read as a request');
@seen = backend_log($blog);
is(scalar(grep { /SMUGGLED/ } @seen), 0, '  the request in its body never reaches the backend');

# what must still pass
my @pass = (
	['two pipelined GETs', '200,200', "GET /p1 HTTP/1.1\r\n$H\r\nGET /p2 HTTP/1.1\r\n$H\r\n"],
	['a chunked POST with an extension-free size in capitals', '200', "POST /ch HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"],
	['a chunked POST with a trailer', '200', "POST /tr HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"],
	['HTTP/1.0 without Host', '200', "GET /h10 HTTP/1.0\r\n\r\n"],
	['Content-Length with spaces around it', '200', "POST /cl HTTP/1.1\r\n${H}Content-Length:  3 \r\n\r\nabc"],
	['a control byte in a header value (nginx passes it)', '200', "GET /v HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n"],
	['a pipelined POST then GET', '200,200', "POST /q1 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabcGET /q2 HTTP/1.1\r\n$H\r\n"],
);
for my $c (@pass) {
	my ($name, $want, $bytes) = @$c;
	($r, $closed) = raw_exchange($port, $bytes);
	is(statuses($r), $want, "$name: $want");
}
@seen = backend_log($blog);
ok((grep { /^REQ \d+ POST \/ch body=10 / } @seen), 'the chunked body reached the backend whole');
ok((grep { /^REQ \d+ GET \/q2 / } @seen), 'the request pipelined after a body reached the backend');

# chunk extensions are accepted, as nginx does (evhttp alone answers 413),
# also when the line comes in pieces; the body reaches the backend whole
($r) = raw_exchange($port, "POST /ext HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n4 ; q=\"a b\"\r\ndefg\r\n0;end\r\n\r\n");
is(statuses($r), '200', 'a chunked body with chunk extensions is answered');
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10) or die;
	for my $piece ("POST /ext2 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;na", "me=val", "ue\r", "\nhello\r\n0\r\n\r\n") {
		syswrite($s, $piece);
		select(undef, undef, undef, 0.2);
	}
	my $got = '';
	my $t0 = time;
	while ($got !~ /\r\n\r\n.*ok/s && time - $t0 < 20) {
		my $n = sysread($s, my $b, 65536);
		last unless $n;
		$got .= $b;
	}
	is(statuses($got), '200', '  also when the extension comes in pieces');
}
@seen = backend_log($blog);
ok((grep { /^REQ \d+ POST \/ext body=7 / } @seen), '  and the backend gets the body whole (7 bytes)');
ok((grep { /^REQ \d+ POST \/ext2 body=5 / } @seen), '  (5 bytes for the one sent in pieces)');

# every Connection header counts: "close, X-Foo" closes and X-Foo stays on its hop
($r, $closed) = raw_exchange($port, "GET /conn HTTP/1.1\r\n${H}Connection: keep-alive\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n");
is(statuses($r), '200', 'a request with two Connection headers is answered');
ok($closed, '  and "close" in the second one closes the connection');
my ($conn) = grep { /^REQ \d+ GET \/conn / } backend_log($blog);
unlike($conn // '', qr/X-Foo/i, '  and X-Foo, named in it, is not passed on');
done_testing();
