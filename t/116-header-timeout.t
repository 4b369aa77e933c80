# client_header_timeout bounds the whole request line and header, as
# nginx's does: a client that trickles its header a byte at a time, each
# byte well within the timeout, is closed once the header has taken longer
# than the timeout, without an answer; the backend never sees the request.
# A header that comes in pieces but within the time is answered.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use WG;
use WGGateway;
use WGRaw;

my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;',
	extra => 'client_header_timeout 2s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my ($r) = raw_exchange($port, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n", quiet => 60);
like($r, qr/^HTTP\/1\.1 200/, 'a plain request is answered (the backend is up)');

# sends $head in pieces, one every $gap seconds; returns (seconds until the
# gateway closed or answered, what it sent back)
sub trickle {
	my ($head, $gap) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10) or die;
	local $SIG{PIPE} = 'IGNORE';
	my $sel = IO::Select->new($s);
	my $t0 = time;
	my $got = '';
	for my $piece (unpack('(a2)*', $head)) {
		last unless defined syswrite($s, $piece);
		my $until = time + $gap;
		while (time < $until) {
			if ($sel->can_read($until - time)) {
				my $n = sysread($s, my $b, 65536);
				return (time - $t0, $got) if !$n;
				$got .= $b;
				return (time - $t0, $got) if $got =~ /\r\n\r\n/;
			}
		}
	}
	while ($sel->can_read(5)) {
		my $n = sysread($s, my $b, 65536);
		last unless $n;
		$got .= $b;
		last if $got =~ /\r\n\r\n/;
	}
	return (time - $t0, $got);
}

# 2 bytes every 0.4s: each read well within 2s, the whole header about 9s
my ($t, $got) = trickle("GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaa\r\n\r\n", 0.4);
ok($t < 6, sprintf('a header trickled in for longer than client_header_timeout 2s is cut (after %.1fs, not ~9s)', $t));
is($got, '', '  without an answer, as nginx');
ok(!(grep { /slowloris/ } backend_log($blog)), '  and the backend never sees it');
like(gw_log($g), qr/client timed out sending its request header \(client_header_timeout 2000ms\)/, '  the error log says why');

# the same bytes within the time: answered
($t, $got) = trickle("GET /pieces HTTP/1.1\r\nHost: x\r\n\r\n", 0.05);
like($got, qr/^HTTP\/1\.1 200/, 'a header sent in pieces within the time is answered');
done_testing();
