# Progress while held (hold_progress): a streaming client held through a 3s
# boot gets its headers at once and an SSE comment a second, then the real
# answer on the same response; a failed boot ends the stream with an error
# event; plain clients and "hold_progress off" are unchanged.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $port = free_port();
my $admin = free_port();
my $be = backend_cmd(boot => 3);
my $text = <<"EOC";
daemon off;
pid $dir/wakegate-$port.pid;
error_log $dir/error-$port.log info;
access_log $dir/access-$port.log;
admin_listen 127.0.0.1:$admin;
upstream slow { launch exec "$be"; warmup off; idle_timeout 1s; stop_grace 1s; }
upstream bad { launch exec "sleep 2; exit 3"; warmup off; boot_timeout 10s; }
server {
	listen 127.0.0.1:$port;
	location /quiet/ { proxy_pass slow; hold_progress off; }
	location /bad/ { proxy_pass bad; }
	location / { proxy_pass slow; }
}
EOC
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
my $state = sub { gw_status($g)->{upstreams}{$_[0]}{state} // '' };

# Sends a raw request; returns [time, bytes] pieces until the server closes or the end of a chunked body.
sub exchange {
	my ($req) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5) or die "connect: $!";
	my $t0 = time;
	print $s $req;
	my $sel = IO::Select->new($s);
	my (@got, $all);
	$all = '';
	while (time - $t0 < 30 && $sel->can_read(30 - (time - $t0))) {
		my $n = sysread($s, my $buf, 65536);
		last unless $n;
		push @got, [time - $t0, $buf];
		$all .= $buf;
		last if $all =~ /\r\n0\r\n\r\n\z/;
	}
	close $s;
	return ($all, \@got);
}
sub first_at { my ($got, $re) = @_; for (@$got) { return $_->[0] if $_->[1] =~ $re } return undef }

# --- a streaming client (Accept: text/event-stream) held through the boot
my ($all, $got) = exchange("GET /sse?n=3&ms=100 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n");
my @status = $all =~ m{^HTTP/1\.1 (\d+)}mg;
is_deeply(\@status, [200], 'one response, 200');
like($all, qr{^Content-Type: text/event-stream}mi, 'an event stream');
my $hdr_at = first_at($got, qr{^HTTP/1\.1 200});
ok(defined $hdr_at && $hdr_at < 1, sprintf('its headers come at once (%.2fs), during the 3s boot', $hdr_at // -1));
my @comments = $all =~ /^: wakegate: slow (booting|warming up|queued), ([\d.]+) s/mg;
ok(@comments / 2 >= 2, 'SSE comments while held (' . (@comments / 2) . ')');
my @events = $all =~ /^data: event (\d+)$/mg;
is_deeply(\@events, [1, 2, 3], 'then the real answer, whole, on the same response');
my $last_comment = 0;
while ($all =~ /^: wakegate: /mg) { $last_comment = pos($all) }
ok($last_comment > 0 && $last_comment < index($all, 'data: event 1'), 'no comment after the answer began');
my $ev_at = first_at($got, qr/data: event 1/);
ok(defined $ev_at && $ev_at >= 2.5, sprintf('the answer came after the boot (%.2fs)', $ev_at // -1));

# --- a plain client is unchanged; a JSON "stream": true client gets progress
ok(wait_until(sub { $state->('slow') eq 'STOPPED' }, 30), 'the replica stops when idle');
my $body = '{"model":"m","stream":true}';
my $pid = fork // die;
if (!$pid) {
	my $r = WG::http_get("http://127.0.0.1:$port/plain", timeout => 30);
	POSIX::_exit($r->{status} == 200 && $r->{content} eq "ok /plain\n" ? 0 : 1);
}
($all) = exchange("POST /sse?n=2&ms=50 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
	. length($body) . "\r\nConnection: close\r\n\r\n$body");
like($all, qr/^: wakegate: slow booting/m, 'a POST with "stream": true in its JSON body gets progress');
like($all, qr/^data: event 2$/m, 'and its answer');
waitpid($pid, 0);
is($?, 0, 'a plain client held at the same time gets the backend\'s answer untouched');

# --- hold_progress off
ok(wait_until(sub { $state->('slow') eq 'STOPPED' }, 30), 'stopped again');
($all) = exchange("GET /quiet/sse?n=1&ms=10 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n");
unlike($all, qr/wakegate:/, 'hold_progress off: no comments');
like($all, qr{^HTTP/1\.1 200 .*\r\nok /quiet/sse}s, 'just the backend\'s answer, as it sent it');

# --- a streaming client that leaves while held: freed, logged 499, the gateway goes on
ok(wait_until(sub { $state->('slow') eq 'STOPPED' }, 30), 'stopped once more');
{
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5) or die;
	print $s "GET /sse?n=1&ms=10&id=gone HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
	my $sel = IO::Select->new($s);
	my $seen = '';
	my $t0 = time;
	while (time - $t0 < 5 && $seen !~ /: wakegate: .*\n.*: wakegate: /s && $sel->can_read(5)) {
		sysread($s, my $b, 4096) or last;
		$seen .= $b;
	}
	like($seen, qr/: wakegate: slow booting/, 'a streaming client sees progress ...');
	close $s;
}
ok(wait_until(sub { gw_log($g) =~ /a held client left/ }, 10), '... leaves, and the gateway sees it go');
ok(wait_until(sub { slurp($g->{access}) =~ /"GET \/sse\?n=1&ms=10&id=gone HTTP\/1.1" 499 / }, 10), 'logged 499');
is(WG::http_get("http://127.0.0.1:$port/after", timeout => 30)->{status}, 200, 'the gateway serves on');

# --- a boot that fails ends the stream with an error event
($all, $got) = exchange("GET /bad/sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n");
like($all, qr{^HTTP/1\.1 200}, 'the failing boot\'s stream started with 200');
like($all, qr/^: wakegate: bad booting/m, 'with progress');
like($all, qr/^event: error\r?\ndata: \{.*"code":503.*\}$/m, 'and ends with an error event naming the failure');
like($all, qr/\r\n0\r\n\r\n\z/, 'then the end of the response');

is(fault_gw_stop($g), 0, 'the gateway exits 0 on SIGTERM (with WG_VALGRIND=1: no leak, no error)');
done_testing;
