# Slow and greedy clients: a slowloris that stalls in its header and a client
# that stalls in its body are closed after client_header_timeout /
# client_body_timeout and hold no fd after; a header beyond 64 KB and a body
# beyond client_max_body_size get a 4xx at once; the gateway keeps serving.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
	upstream => 'warmup off; idle_timeout 60s; stop_grace 1s;',
	extra => "client_header_timeout 2s;\nclient_body_timeout 2s;\nclient_max_body_size 64k;");
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
is(WG::http_get("$g->{url}/first", timeout => 30)->{status}, 200, 'the backend answers through the gateway');

sub nfds { opendir(my $d, "/proc/$g->{pid}/fd") or return -1; my @f = grep { /^\d+$/ } readdir $d; return scalar @f }
sub vmrss { (slurp("/proc/$g->{pid}/status") =~ /VmRSS:\s+(\d+)/)[0] // 0 }
my $fd0 = nfds();

# Reads what the gateway sends until it closes; undef when it did not close within $t seconds.
sub read_to_close {
	my ($s, $t) = @_;
	$s->blocking(0);
	my $got = '';
	my $end = time + $t;
	while (time < $end) {
		my $n = sysread($s, my $b, 65536);
		return $got if defined $n && $n == 0;
		return $got if !defined $n && !$!{EAGAIN} && !$!{EWOULDBLOCK};    # reset
		$got .= $b if $n;
		sleep 0.05 unless $n;
	}
	return undef;
}

# 1. slowloris: 20 clients send half a header and stall
{
	my @s = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die } 1 .. 20;
	print $_ "GET /x HTTP/1.1\r\nHost: x\r\nX-A: " for @s;
	ok(wait_until(sub { nfds() >= $fd0 + 18 }, 10), 'the gateway holds the 20 stalled header connections for now');
	my $t0 = time;
	my $closed = 0;
	for (@s) { $closed++ if defined read_to_close($_, 20) }
	is($closed, 20, 'all 20 stalled-header clients are closed by the gateway (client_header_timeout 2s)');
	ok(time - $t0 < 15, 'within a few seconds of the timeout');
	close $_ for @s;
	ok(wait_until(sub { nfds() <= $fd0 }, 10), 'the gateway holds no fd for them after');
	is(WG::http_get("$g->{url}/after-slowloris", timeout => 30)->{status}, 200, 'the gateway serves after the slowloris');
}

# 2. slow body: Content-Length 1000, 10 bytes, stall
{
	my @s = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die } 1 .. 10;
	print $_ "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789" for @s;
	my $closed = 0;
	for (@s) { my $r = read_to_close($_, 20); $closed++ if defined $r && $r !~ /^HTTP\/1\.1 200/ }
	is($closed, 10, 'clients that stall in their body are closed without a 200 (client_body_timeout 2s)');
	close $_ for @s;
	ok(wait_until(sub { nfds() <= $fd0 }, 10), 'and hold no fd after');
	is(WG::http_get("$g->{url}/after-slow-body", timeout => 30)->{status}, 200, 'the gateway serves after the slow bodies');
}

# 3. oversized header: 100 KB in one header; then 4 MB of headers in a stream
{
	my $r = WG::http_get("$g->{url}/big-header", headers => { 'X-Big' => 'b' x 100_000 }, timeout => 30);
	ok($r->{status} >= 400 && $r->{status} < 500, "a 100 KB header gets a 4xx (got $r->{status})");
	my $rss0 = vmrss();
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
	$SIG{PIPE} = 'IGNORE';
	print $s "GET /x HTTP/1.1\r\nHost: x\r\n";
	my $sent = 0;
	for (1 .. 4096) {
		my $n = syswrite($s, "X-H$_: " . ('h' x 1000) . "\r\n");
		last unless $n;
		$sent += $n;
	}
	my $got = read_to_close($s, 20);
	ok(defined $got, 'a client that sends megabytes of headers is closed');
	like($got // '', qr/^(HTTP\/1\.1 4\d\d|)/, '  with a 4xx or a plain close');
	my $grew = vmrss() - $rss0;
	ok($grew < 2048, "  and the gateway did not buffer them (RSS grew ${grew} KB after $sent bytes sent)");
	close $s;
}

# 4. oversized body: 200 KB against client_max_body_size 64k
{
	my $r = WG::http_post("$g->{url}/big-body", 'x' x 200_000, timeout => 30);
	is($r->{status}, 413, 'a body beyond client_max_body_size gets a 413');
	$r = WG::http_post("$g->{url}/ok-body", 'x' x 1000, timeout => 30);
	is($r->{status}, 200, 'a body within the limit goes through');
}

ok(wait_until(sub { nfds() <= $fd0 }, 10), 'in the end the gateway holds no more fds than at the start');
is(WG::http_get("$g->{url}/last", timeout => 30)->{status}, 200, 'and it still serves');
is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
done_testing;
