# A backend that misbehaves (garbage, closes early, a huge header, never
# answers) gets its client a 502/504 that says why, fast; the gateway keeps
# serving the next request. WG_VALGRIND=1 runs the gateway under valgrind and
# checks it exits with no leak and no invalid access.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my $launch = 'exec perl ' . src('t/lib/backend.pl') . ' --port $port';
my ($text, $port, $admin) = gw_conf(launch => $launch,
	upstream => 'health /status; warmup off; idle_timeout 60s; stop_grace 1s;',
	extra => 'proxy_read_timeout 2s;');
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);

my $r = WG::http_get("$g->{url}/echo", timeout => 60);
is($r->{status}, 200, 'a well-behaved answer goes through first');

my @cases = (
	['/garbage', 502, qr/./, 'an answer that is not HTTP'],
	['/close-no-answer', 502, qr/./, 'a backend that closes without a byte'],
	['/close-mid-headers', 502, qr/closed the connection/, 'a backend that closes in the middle of the header'],
	['/huge-header', 502, qr/./, 'a backend that sends a 200 KB header'],
	['/never', 504, qr/./, 'a backend that never answers (proxy_read_timeout 2s)'],
);
for my $c (@cases) {
	my ($path, $code, $why, $name) = @$c;
	my $t0 = time;
	$r = WG::http_get("$g->{url}$path", timeout => 60);
	is($r->{status}, $code, "$name gets its client a $code");
	like($r->{content}, $why, "  with a reason in the body ($path)");
	note("$path: $r->{status} " . substr($r->{content} // '', 0, 200));
	ok(time - $t0 < 30, "  and it comes without a long wait ($path)");
	$r = WG::http_get("$g->{url}/echo", timeout => 60);
	is($r->{status}, 200, "  the gateway serves the next request after $path");
}

# a body cut short after a 200 header: the client must see the truncation
# (connection closed before Content-Length is met), not a short "success"
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 30) or die;
	print $s "GET /close-mid-body HTTP/1.1\r\nHost: x\r\n\r\n";
	my $got = '';
	my $t0 = time;
	$s->blocking(0);
	while (time - $t0 < 30) {
		my $n = sysread($s, my $b, 65536);
		if (defined $n && $n == 0) { last }
		$got .= $b if $n;
		sleep 0.02 unless $n;
	}
	ok(time - $t0 < 30, 'a body cut short by the backend ends the client connection (no hang)');
	my ($hdr, $body) = split /\r\n\r\n/, $got, 2;
	$hdr //= '';
	$body //= '';
	if ($hdr =~ /^HTTP\/1\.1 200/) {
		my ($cl) = $hdr =~ /content-length:\s*(\d+)/i;
		ok(!defined($cl) || length($body) < $cl || $hdr =~ /chunked/i && $body !~ /0\r\n\r\n$/,
			'  and the client can tell the answer is incomplete');
	} else {
		like($hdr, qr/^HTTP\/1\.1 502/, '  or it gets a 502');
	}
}
$r = WG::http_get("$g->{url}/echo", timeout => 60);
is($r->{status}, 200, 'the gateway serves after a body cut short');

# many bad answers at once, mixed with good ones: every client answered
{
	my @kids;
	for my $i (1 .. 20) {
		my $path = (qw(/garbage /close-no-answer /close-mid-headers /huge-header /echo))[$i % 5];
		my $pid = fork // die;
		if ($pid == 0) {
			my $rr = WG::http_get("$g->{url}$path", timeout => 60);
			POSIX::_exit($path eq '/echo' ? ($rr->{status} == 200 ? 0 : 1) : ($rr->{status} == 502 ? 0 : 2));
		}
		push @kids, $pid;
	}
	my $bad = 0;
	for (@kids) { waitpid($_, 0); $bad++ if $? }
	is($bad, 0, '20 concurrent requests, bad and good, each get the right answer (502 or 200)');
}
ok(kill(0, $g->{pid}), 'the gateway process is still alive');
like(WG::http_get("$g->{admin_url}/status")->{content} // '', qr/READY/, 'the upstream is still READY');

is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak and no invalid access under valgrind' : ''));
done_testing;
