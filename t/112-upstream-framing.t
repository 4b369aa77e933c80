# A backend that sends more than its answer (a body longer than its
# Content-Length, a body on a HEAD, 204 or 304 answer, each followed by a
# whole second response) never makes a client receive another request's
# answer: the pooled connection is not reused, and the log says "upstream
# sent more data than specified in Content-Length", as nginx's does. Two
# clients on their own connections, one after the other and at the same
# time. Conflicting Content-Length headers from a backend are a 502.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);
use WG;
use WGGateway;
use WGRaw;

my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog, '--oversend'),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $H = "Host: x\r\n";
my ($r) = raw_exchange($port, "GET /warm HTTP/1.1\r\n$H\r\n", quiet => 60);
like($r, qr/^HTTP\/1\.1 200/, 'a plain request is answered (the backend is up)');

# one request on its own connection; the reply until the gateway goes quiet
sub one {
	my ($method, $path) = @_;
	my ($reply) = raw_exchange($port, "$method $path HTTP/1.1\r\n${H}Connection: close\r\n\r\n", quiet => 2);
	return $reply;
}

for my $c (['GET', '/oversend', 200], ['HEAD', '/oversend', 200], ['GET', '/oversend?code=204', 204],
	['GET', '/oversend?code=304', 304]) {
	my ($m, $path, $code) = @$c;
	my $a = one($m, $path);
	is(statuses($a), $code, "$m $path: the client gets its own $code");
	unlike($a, qr/SMUGGLED|X-Smuggled/, '  and nothing of the extra bytes');
	my $b = one('GET', "/next-after-$code-$m");
	is(statuses($b), '200', '  the next client (another connection) gets a 200');
	like($b, qr/ok \/next-after-$code-$m/, '  with its own answer');
	unlike($b, qr/SMUGGLED|X-Smuggled/, '  never the extra response the backend sent before');
}
like(gw_log($g), qr/upstream 127\.0\.0\.1:\d+ sent more data than specified in Content-Length/,
	'the error log says the upstream sent more data than specified in Content-Length');

# two clients at once, many times: each only ever gets its own answer
my ($mixed, $wrong) = (0, 0);
for my $i (1 .. 40) {
	my @s = map {
		IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10) or die "connect: $!"
	} 1 .. 2;
	my $code = (200, 204, 304)[$i % 3];
	my @path = ("/oversend?code=$code&i=$i", "/plain-$i");
	syswrite($s[0], ($i % 2 ? 'GET' : 'HEAD') . " $path[0] HTTP/1.1\r\n${H}Connection: close\r\n\r\n");
	syswrite($s[1], "GET $path[1] HTTP/1.1\r\n${H}Connection: close\r\n\r\n");
	my @got = ('', '');
	my $sel = IO::Select->new(@s);
	my $t0 = time;
	while ($sel->count && time - $t0 < 20) {
		for my $h ($sel->can_read(0.5)) {
			my $k = $h == $s[0] ? 0 : 1;
			my $n = sysread($h, my $b, 65536);
			if (!$n) { $sel->remove($h); next }
			$got[$k] .= $b;
		}
	}
	$mixed++ if "$got[0]$got[1]" =~ /SMUGGLED|X-Smuggled/;
	$wrong++ unless $got[1] =~ /ok \Q$path[1]\E/ && statuses($got[1]) eq '200' && statuses($got[0]) eq $code;
	close $_ for @s;
}
is($mixed, 0, '40 rounds of two clients at once (one asking an over-sending backend): no client gets the extra response');
is($wrong, 0, '  and each client gets its own answer with its own status');

# Content-Length headers that disagree: 502, and the next request is fine
my $d = one('GET', '/dupcl');
is(statuses($d), '502', 'an answer with two different Content-Length headers is a 502');
like($d, qr/conflicting Content-Length/, '  that says why');
my $n = one("GET", "/next-one");
is(statuses($n), "200", "  and the next request is answered") or diag($n);
done_testing();
