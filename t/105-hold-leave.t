# A held client that leaves is taken out of the hold queue when it leaves,
# long before the boot it waited for ends (wakegate(8), HOLD QUEUE: "A held
# client that disconnects is removed from the queue (logged as 499 in the
# access log); it does not cancel the boot"). The boot here takes 6 s, so that "removed when
# it left" and "answered at READY anyway" cannot be confused: t/43 §5 and
# t/90 §4 wait longer than their boot for held == 0, and pass without the
# watch on the client's socket.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $boot = 6;
my ($text, $port, $admin) = gw_conf(launch => "sleep $boot; " . backend_cmd(),
	upstream => 'warmup off; hold 10 timeout=60s; idle_timeout 60s; stop_grace 1s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub st { return gw_status($g)->{upstreams}{digits} // {} }

my $t0 = time;
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
print $s "GET /held HTTP/1.1\r\nHost: x\r\n\r\n";
$s->flush;
ok(wait_until(sub { (st()->{held} // 0) == 1 }, 10), 'the request is held while the backend boots');
close $s;
my $t_close = time;
ok(wait_until(sub { (st()->{held} // 1) == 0 }, 2), 'within 2s of leaving, the client is out of the hold queue');
my $t_gone = time;
my $state = st()->{state} // '';
is($state, 'BOOTING', "that is before the ${boot}s boot ends");
cmp_ok($t_gone - $t0, '<', $boot - 2, sprintf('well before it: %.2fs after the request, %.2fs after the close',
	$t_gone - $t0, $t_gone - $t_close));
my ($after) = gw_log($g) =~ /a held client left after ([\d.]+)s/;
ok(defined $after, 'the log says the held client left');
cmp_ok($after // 99, '<', $boot - 2, 'and when: soon after it came, not at READY');
like(slurp($g->{access}), qr{"GET /held HTTP/1.1" 499 0 upstream=digits}, 'the access log has it as 499');

# the boot goes on without waiters, and nothing is sent to the backend for the gone client
ok(wait_until(sub { (st()->{state} // '') eq 'READY' }, 30), 'the boot goes on to READY without waiters');
is(st()->{in_flight} // -1, 0, 'the gone request is not forwarded at READY');
my $r = WG::http_get("$g->{url}/next", timeout => 30);
is("$r->{status} $r->{content}", "200 ok /next\n", 'the next request is served warm');
is(st()->{held} // -1, 0, 'nothing is left held');

stop_proc($g->{pid});
done_testing;
