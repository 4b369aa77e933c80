# max_clients (man wakegate.conf.5): client connections of the server
# listeners are counted from accept to close; one accepted while max_clients
# are open gets 503 with Connection: close on its first request, and the
# error log says "max_clients N reached"; the admin listener is not counted.
# Real clients on loopback, the raw-logging backend behind the gateway.
# WG_VALGRIND=1: the gateway under valgrind, which must find no leak and no
# invalid access (the count holds each new bufferevent for a loop turn).
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGRaw;
use WGFaults;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog), extra => 'max_clients 3;',
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;');
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
my $H = "Host: x\r\n";

# a metric without labels, from the admin listener
sub m_val {
	my ($name) = @_;
	my $m = WG::http_get("$g->{admin_url}/metrics")->{content} // '';
	return $m =~ /^\Q$name\E (\S+)$/m ? $1 + 0 : -1;
}

# a new connection that sends one GET and reads its whole answer; the socket stays open
sub client {
	my ($path) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10) or die "connect: $!";
	return ($s, undef) unless defined $path;
	syswrite($s, "GET $path HTTP/1.1\r\n$H\r\n");
	return ($s, read_answer($s));
}

# one answer (head + Content-Length body); closed => 1 when the peer closed after it
sub read_answer {
	my ($s) = @_;
	my $sel = IO::Select->new($s);
	my ($got, $closed, $t0) = ('', 0, time);
	while (time - $t0 < 30) {
		if ($got =~ /\r\n\r\n/ && $got =~ /^Content-Length: (\d+)\r$/mi) {
			my $need = index($got, "\r\n\r\n") + 4 + $1;
			last if length($got) >= $need && !$sel->can_read(0.3);
		}
		next unless $sel->can_read(0.1);
		my $n = sysread($s, my $b, 65536);
		if (!$n) { $closed = 1; last }
		$got .= $b;
	}
	my ($st) = $got =~ /^HTTP\/1\.1 (\d{3})/;
	return { status => $st // 0, raw => $got, closed => $closed };
}

my ($w, $a) = client('/warm');
is($a->{status}, 200, 'a client is answered (the backend is up)');
close $w;
ok(wait_until(sub { m_val('wakegate_clients_connected') == 0 }, 30), 'wakegate_clients_connected is 0 once it left');

my @keep;
for my $i (1 .. 3) {
	my ($s, $r) = client("/k$i");
	is($r->{status}, 200, "client $i of 3 is answered");
	ok(!$r->{closed}, '  and keeps its connection');
	push @keep, $s;
}
ok(wait_until(sub { m_val('wakegate_clients_connected') == 3 }, 30), 'wakegate_clients_connected counts the 3');
is(WG::http_get("$g->{admin_url}/status")->{status}, 200, 'the admin listener answers at the cap (it is not counted)');

my ($s4, $r4) = client('/k4');
is($r4->{status}, 503, 'a 4th connection past max_clients 3 gets 503');
like($r4->{raw}, qr/^Connection: close\r$/mi, '  with Connection: close');
like($r4->{raw}, qr/^Retry-After: 1\r$/mi, '  and Retry-After: 1');
like($r4->{raw}, qr/max_clients 3 reached/, '  and a body that says why');
ok($r4->{closed}, '  and the gateway closes the connection');
close $s4;
is(scalar(grep { /^REQ \d+ GET \/k4 / } backend_log($blog)), 0, 'its request never reaches the backend');
is(m_val('wakegate_clients_refused_total'), 1, 'wakegate_clients_refused_total counts it');
like(gw_log($g), qr/\[warn\] .*max_clients 3 reached/, 'the error log says "max_clients 3 reached"');
ok(wait_until(sub { m_val('wakegate_clients_connected') == 3 }, 30), 'once it closed, the count is back to 3');

# refusals in a burst: at most one log line a second, every one counted
my $t0 = time;
for my $i (5 .. 12) {
	my ($s, $r) = client("/k$i");
	is($r->{status}, 503, "connection $i past the cap: 503");
	close $s;
}
my $took = time - $t0;
is(m_val('wakegate_clients_refused_total'), 9, 'all nine refusals are counted');
my @lines = gw_log($g) =~ /max_clients 3 reached/g;
cmp_ok(scalar(@lines), '<=', 2 + int($took), sprintf('the log line is rate-limited (%d lines for 9 refusals in %.1fs)',
	scalar(@lines), $took));
like(gw_log($g), qr/max_clients 3 reached: .*\((?:[2-8]) since the last such line\)/,
	'  a later line says how many were refused since the one before') if $took > 1.0;

# a connection that never sends a byte still counts, and its close is seen
ok(wait_until(sub { m_val('wakegate_clients_connected') == 3 }, 30), 'the refused ones are no longer counted');
my ($idle) = client(undef);
ok(wait_until(sub { m_val('wakegate_clients_connected') == 4 }, 30), 'a silent connection past the cap is counted while open');
close $idle;
ok(wait_until(sub { m_val('wakegate_clients_connected') == 3 }, 30), '  and no longer once it closes without a request');

# a client leaves: the next one is served
close shift @keep;
ok(wait_until(sub { m_val('wakegate_clients_connected') == 2 }, 30), 'a client that leaves frees its place');
my ($s9, $r9) = client('/k99');
is($r9->{status}, 200, 'and the next new connection is answered 200');
ok(!$r9->{closed}, '  on a kept connection');
is(scalar(grep { /^REQ \d+ GET \/k99 / } backend_log($blog)), 1, '  its request reached the backend');
close $_ for @keep, $s9;
ok(wait_until(sub { m_val('wakegate_clients_connected') == 0 }, 30), 'all closed: the count is 0');

# the gateway stops cleanly with clients still connected, one of them past the cap
my @last = map { (client("/last$_"))[0] } 1 .. 3;
my ($past) = client(undef);
ok(wait_until(sub { m_val('wakegate_clients_connected') == 4 }, 30), 'four connected at the stop, one past the cap');
is(fault_gw_stop($g), 0, 'the gateway exits 0 with them open' . (fault_valgrind() ? ' (valgrind: no leak, no invalid access)' : ''));
close $_ for @last, $past;

done_testing();
