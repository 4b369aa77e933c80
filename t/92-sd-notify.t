# Type=notify (debian/wakegate.service): with $NOTIFY_SOCKET set, as systemd
# sets it, the gateway reports READY=1 once it serves, RELOADING=1 then
# READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM; the workers it
# launches do not inherit the socket.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_DGRAM);

my $dir = tmpdir();
my $path = "$dir/notify.sock";
my $sock = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $path) or die "$path: $!";
my $sel = IO::Select->new($sock);

# The next datagram, or '' after timeout seconds.
sub next_msg {
	my ($timeout) = @_;
	return '' unless $sel->can_read($timeout);
	my $m = '';
	$sock->recv($m, 4096);
	return $m;
}

my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 60s;');
my $conf = "$dir/gw.conf";
spew($conf, $text);
my $pid = start_proc(name => 'wakegate-notify', cmd => [bin('wakegate'), '-p', $dir, '-c', $conf],
	env => { NOTIFY_SOCKET => $path }, log => "$dir/notify.out");
is(next_msg(30), 'READY=1', 'READY=1 once started');
is(http_get("http://127.0.0.1:$admin/status")->{status}, 200, 'and it answers by then');

my ($body) = digits_input(0);
is(http_post("http://127.0.0.1:$port/predict", $body, timeout => 60)->{status}, 200, 'a request wakes a worker');
my @kids = gw_children($pid);
ok(@kids, 'the gateway has launched a worker');
my @leak = grep { slurp("/proc/$_/environ") =~ /(^|\0)NOTIFY_SOCKET=/ } @kids;
is(scalar @leak, 0, 'no launched process has NOTIFY_SOCKET in its environment');

kill 'HUP', $pid;
is(next_msg(10), 'RELOADING=1', 'SIGHUP: RELOADING=1');
is(next_msg(10), 'READY=1', 'then READY=1 when the reload is done');
kill 'TERM', $pid;
is(next_msg(10), 'STOPPING=1', 'SIGTERM: STOPPING=1');
is(stop_proc($pid, 'TERM', 40) >> 8, 0, 'and it exits 0');

# without NOTIFY_SOCKET nothing is sent and nothing fails
my ($t2, $p2, $a2) = gw_conf();
spew("$dir/gw2.conf", $t2);
my $pid2 = start_proc(name => 'wakegate-plain', cmd => [bin('wakegate'), '-p', $dir, '-c', "$dir/gw2.conf"]);
ok(wait_http("http://127.0.0.1:$a2/status", 30), 'without NOTIFY_SOCKET it starts as before');
is(next_msg(0.5), '', 'and sends nothing');
stop_proc($pid2, 'TERM', 40);

done_testing();
