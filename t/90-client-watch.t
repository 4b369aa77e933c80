# The watch on a client socket stays for the connection's life (gateway/
# client_conn.c): on a kept-alive connection that has had requests already, a
# client that leaves mid-forward is still seen at once; pipelined bytes and a
# close while a request is held do not make the gateway spin on the readable
# socket; the gateway answers everything in order and holds no fd after.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my ($text, $port, $admin) = gw_conf(launch => backend_cmd(boot => 2),
	upstream => 'warmup off; idle_timeout 2s; stop_grace 1s; hold 100 timeout=30s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

sub cpu_s { my @f = split ' ', (slurp("/proc/$g->{pid}/stat") =~ s/^.*\)\s+//sr); return ($f[11] + $f[12]) / 100 }
sub nfds { opendir(my $d, "/proc/$g->{pid}/fd") or return -1; return scalar grep { /^\d+$/ } readdir $d }

# Reads one whole response (Content-Length or chunked) from a blocking socket.
sub read_response {
	my ($s, $t) = @_;
	my $buf = '';
	my $end = time + ($t // 30);
	$s->blocking(0);
	while (time < $end) {
		if ($buf =~ /^(HTTP\/1\.1 (\d+)[^\r]*\r\n(.*?)\r\n\r\n)/s) {
			my ($hlen, $code, $h) = (length $1, $2, $3);
			if ($h =~ /^Content-Length:\s*(\d+)/mi) {
				return ($code, substr($buf, $hlen, $1), substr($buf, $hlen + $1)) if length($buf) >= $hlen + $1;
			} elsif ($h =~ /^Transfer-Encoding:\s*chunked/mi) {
				my $rest = substr($buf, $hlen);
				if ($rest =~ /^((?:[0-9a-fA-F]+\r\n.*?\r\n)*?0\r\n\r\n)/s) {
					my $raw = $1;
					(my $body = $raw) =~ s/[0-9a-fA-F]+\r\n(.*?)\r\n/$1/gs;
					return ($code, $body, substr($rest, length $raw));
				}
			}
		}
		my $n = sysread($s, my $b, 65536);
		return (0, $buf) if defined $n && $n == 0;
		$buf .= $b if $n;
		sleep 0.01 unless $n;
	}
	return (-1, $buf);
}

sub request { my ($path) = @_; return "GET $path HTTP/1.1\r\nHost: x\r\n\r\n" }

# 1. one connection, several requests in turn: the watch made by the first stays
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
my @codes;
for my $i (1 .. 3) {
	print $s request("/slow?ms=10&id=k$i");
	my ($code, $body) = read_response($s);
	push @codes, "$code " . ($body // '');
}
is_deeply(\@codes, ["200 slow k1\n", "200 slow k2\n", "200 slow k3\n"], 'three requests in turn on one connection');

# 2. pipelined bytes while a request is forwarded: both answered in order, no spinning
{
	print $s request('/slow?ms=1500&id=p1');
	sleep 0.3;	# the second comes while the first is forwarded: the socket is readable again
	my $c0 = cpu_s();
	print $s request('/slow?ms=10&id=p2');
	my ($c1, $b1, $rest) = read_response($s);
	my $cpu = cpu_s() - $c0;
	is("$c1 $b1", "200 slow p1\n", 'the first of two pipelined requests is answered');
	# what came after the first answer may already hold the second
	my ($c2, $b2) = $rest =~ /^HTTP/ ? (200, $rest =~ /\r\n\r\n(.*)$/s ? $1 : '') : read_response($s);
	like("$c2 $b2", qr/^200 .*slow p2\n/s, 'then the second, on the same connection');
	cmp_ok($cpu, '<', 0.5, sprintf('the gateway did not spin on the pipelined bytes (%.2fs CPU in 1.2s)', $cpu));
}

# 3. the client leaves in the middle of a forward, on a connection with a history
{
	my $log0 = -s $g->{log};
	print $s request('/slow?ms=5000&id=gone');
	sleep 0.3;
	close $s;
	ok(wait_until(sub { substr(slurp($g->{log}), $log0) =~ /client closed the connection while forwarding/ }, 3),
		'the gateway sees the client leave mid-forward');
}

# 4. on a kept-alive connection, a request held while the worker boots and a
#    second one sent meanwhile: the socket is readable while evhttp does not
#    read; no spinning, both answered in order once the worker is up; then a
#    held request goes with its client when it closes
{
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 20),
		'the worker stops once idle');
	my $k = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
	print $k request('/slow?ms=10&id=h0');
	my ($code) = read_response($k, 30);
	is($code, 200, 'a request wakes the worker (held while it boots)');
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 20),
		'the worker stops again');
	print $k request('/slow?ms=10&id=h1');
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 5), 'the next request on that connection is held');
	my $c0 = cpu_s();
	print $k request('/slow?ms=10&id=h2');
	sleep 1;
	my $cpu = cpu_s() - $c0;
	cmp_ok($cpu, '<', 0.5, sprintf('the gateway did not spin on the bytes sent while held (%.2fs CPU in 1s)', $cpu));
	my ($c1, $b1, $rest) = read_response($k, 30);
	is("$c1 $b1", "200 slow h1\n", 'the held request is answered once the worker is up');
	my ($c2, $b2) = $rest =~ /^HTTP/ ? (200, $rest =~ /\r\n\r\n(.*)$/s ? $1 : '') : read_response($k);
	like("$c2 $b2", qr/^200 .*slow h2\n/s, 'then the one sent meanwhile');
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 20),
		'the worker stops a third time');
	print $k request('/slow?ms=10&id=h3');
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 5), 'a request is held again');
	close $k;
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 1) == 0 }, 5), 'the held request goes with its client');
}

# 5. still serving, and no fd left for the connections above
my $after = WG::http_get("$g->{url}/slow?ms=10&id=after", timeout => 30);
is($after->{status}, 200, 'the gateway still serves') or diag("$after->{status} $after->{content}\n" . slurp($g->{log}));
my $fd_now = nfds();
my $k2 = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $k2 request('/slow?ms=10&id=last');
my ($lc) = read_response($k2);
is($lc, 200, 'a new connection is served');
close $k2;
ok(wait_until(sub { nfds() <= $fd_now }, 5), 'its fd is closed after it goes');

stop_proc($g->{pid});
done_testing();
