#!/usr/bin/perl
# sleep-backend: a stand-in backend for the sleep ladder tests that speaks
# vLLM's sleep API (and Triton's model control) exactly as the gateway must
# drive it, and records every call it gets, in order, to --log FILE:
#   POST /sleep?level=N          asleep at level N (200)
#   POST /wake_up                awake (200), or 500 with --fail-wake
#   GET  /is_sleeping            {"is_sleeping": true|false}
#   POST /collective_rpc         200 (the body is logged)
#   POST /reset_prefix_cache     200
#   POST /v2/repository/models/M/unload|load   asleep at level 2 / awake
#   GET  /v2/health/ready        200 once up (503 while asleep)
#   anything else                503 "asleep" while asleep, else 200 "ok PATH"
# One process forks per connection; the sleep level lives in FILE.state.
#   sleep-backend.pl PORT --log FILE [--fail-wake 1]
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time);
use POSIX qw(WNOHANG);

my $port = shift or die "usage: sleep-backend.pl PORT --log FILE [--fail-wake 1]\n";
my %o = @ARGV;
my $log = $o{'--log'} or die "--log FILE\n";
my $state = "$log.state";
$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
$SIG{TERM} = sub { exit 0 };
open my $sf, '>', $state or die; print $sf "0"; close $sf;
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 64,
	ReuseAddr => 1, Proto => 'tcp') or die "listen $port: $!";

sub level { open my $f, '<', $state or return 0; my $l = <$f> // 0; close $f; return $l + 0 }
sub set_level { open my $f, '>', $state or die; print $f $_[0]; close $f }
sub note {
	open my $fh, '>>', $log or return;
	flock($fh, 2);
	printf $fh "%.6f %d %s\n", time, $$, $_[0];
	close $fh;
}
sub reply {
	my ($c, $code, $body) = @_;
	print $c "HTTP/1.1 $code X\r\nContent-Type: application/json\r\nContent-Length: " . length($body) .
		"\r\n\r\n$body";
}

while (1) {
	my $c = $srv->accept or next;
	my $pid = fork;
	if (!defined $pid || $pid) { close $c; next; }
	close $srv;
	$c->autoflush(1);
	while (my $line = <$c>) {
		my ($m, $path) = $line =~ /^(\S+) (\S+)/ or last;
		my $len = 0;
		while (my $h = <$c>) {
			last if $h =~ /^\r?\n$/;
			$len = $1 if $h =~ /^Content-Length:\s*(\d+)/i;
		}
		my $body = '';
		read($c, $body, $len) if $len;
		my $lv = level();
		if ($m eq 'POST' && $path =~ m{^/sleep\?level=([12])$}) {
			note("POST $path");
			set_level($1);
			reply($c, 200, '{}');
		} elsif ($m eq 'POST' && $path eq '/wake_up') {
			note("POST $path");
			if ($o{'--fail-wake'}) { reply($c, 500, '{"error":"cannot wake"}'); next }
			set_level(0);
			reply($c, 200, '{}');
		} elsif ($m eq 'GET' && $path eq '/is_sleeping') {
			reply($c, 200, $lv ? '{"is_sleeping":true}' : '{"is_sleeping":false}');
		} elsif ($m eq 'POST' && ($path eq '/collective_rpc' || $path eq '/reset_prefix_cache')) {
			note("POST $path $body");
			reply($c, 200, '{}');
		} elsif ($m eq 'POST' && $path =~ m{^/v2/repository/models/[^/]+/(unload|load)$}) {
			note("POST $path");
			set_level($1 eq 'unload' ? 2 : 0);
			reply($c, 200, '{}');
		} elsif ($lv) {
			reply($c, 503, '{"error":"asleep"}');
		} else {
			reply($c, 200, "\"ok $path\"");
		}
	}
	exit 0;
}
