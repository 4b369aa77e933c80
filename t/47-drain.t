# Held requests drain into a new replica oldest first and never more than
# max_conns at once; a replica that dies while READY fails its in-flight
# request with 502 and the next request gets a new replica.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $log = tmpdir() . '/backend-slow.log';
my ($text, $port, $admin) = gw_conf(launch => 'sleep 1; ' . backend_cmd(log => $log),
	upstream => 'warmup off; max_conns 2; hold 50 timeout=30s; idle_timeout 60s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

my @kids;
for my $i (1 .. 6) {
	my $pid = fork // die;
	if ($pid == 0) {
		my $r = WG::http_get("$g->{url}/slow?ms=400&id=$i", timeout => 60);
		POSIX::_exit($r->{status} == 200 && $r->{content} eq "slow $i\n" ? 0 : 1);
	}
	push @kids, $pid;
	# each one held before the next arrives, so the order is known
	wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == $i }, 10);
}
my $ok = 0;
for (@kids) { waitpid($_, 0); $ok++ if $? == 0 }
is($ok, 6, 'six requests held during a boot are all answered');

my (@events, %start);
for (split /\n/, slurp($log)) {
	my ($what, $id, $t) = split ' ';
	push @events, [$what, $id, $t];
}
my ($cur, $max) = (0, 0);
for my $e (sort { $a->[2] <=> $b->[2] } @events) {
	$cur += $e->[0] eq 'start' ? 1 : -1;
	$max = $cur if $cur > $max;
}
is($max, 2, 'the new replica never gets more than max_conns requests at once');
my @order = map { $_->[1] } grep { $_->[0] eq 'start' } sort { $a->[2] <=> $b->[2] } @events;
my @pairs = map { join ',', sort { $a <=> $b } @order[2 * $_, 2 * $_ + 1] } 0 .. 2;
is_deeply(\@pairs, ['1,2', '3,4', '5,6'], 'held requests drain oldest first, two at a time');

# a replica that dies while READY
my $pid = fork // die;
if ($pid == 0) {
	my $r = WG::http_get("$g->{url}/die", timeout => 30);
	POSIX::_exit($r->{status} == 502 ? 0 : 1);
}
waitpid($pid, 0);
is($?, 0, 'a request in flight on a replica that dies gets 502');
ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'FAILED' }, 10), 'the replica is FAILED');
like(gw_log($g), qr/READY -> FAILED \(killed by signal 9 while ready/, 'the log says it died while ready');
my $r = WG::http_get("$g->{url}/slow?ms=10&id=after", timeout => 60);
is($r->{status}, 200, 'the next request is held and served by a new replica after the backoff');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 2, 'that took a second cold start');

done_testing;
