#!/usr/bin/perl
# test-backend: a small HTTP backend for the gateway tests, standing in for a
# model server that misbehaves on purpose. One process forks per connection.
#   test-backend.pl PORT [--boot SECONDS]
#   GET  /v2/health/ready   200 once --boot seconds have passed since start
#   GET  /sse?n=N&ms=MS     text/event-stream: N events, one every MS ms
#   GET  /slow?ms=MS        200 "slow" after MS ms (also /PREFIX/slow)
#   GET  /pid               the backend's pid
#   GET  /headers           the request's header lines, as received
#   GET  /die               the backend kills itself (SIGKILL) without answering
#   --log FILE              /slow appends "start ID T" and "end ID T" lines (ID from ?id=)
#   --metrics FILE          GET /metrics answers FILE's text (Prometheus gauges a test sets)
#   anything else           200 "ok PATH"
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

my $port = shift or die "usage: test-backend.pl PORT [--boot S]\n";
my %o = @ARGV;
my $boot = $o{'--boot'} // 0;
my $t0 = time;
$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
$SIG{TERM} = sub { exit 0 };
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 64,
	ReuseAddr => 1, Proto => 'tcp') or die "listen $port: $!";

sub note_log {
	my ($what, $id) = @_;
	return unless $o{'--log'};
	open my $fh, '>>', $o{'--log'} or return;
	flock($fh, 2);
	printf $fh "%s %s %.6f\n", $what, $id // '-', time;
	close $fh;
}

sub reply {
	my ($c, $code, $body, $type) = @_;
	$type //= 'text/plain';
	print $c "HTTP/1.1 $code X\r\nContent-Type: $type\r\nContent-Length: " . length($body) .
		"\r\nConnection: close\r\n\r\n$body";
}

while (1) {
	my $c = $srv->accept or next;
	my $pid = fork;
	if (!defined $pid || $pid) { close $c; next }
	close $srv;
	$c->autoflush(1);
	my $line = <$c> // exit 0;
	my ($method, $path) = split ' ', $line;
	my $len = 0;
	my $hdrs = '';
	while (my $h = <$c>) {
		last if $h =~ /^\r?\n$/;
		$hdrs .= $h;
		$len = $1 if $h =~ /^content-length:\s*(\d+)/i;
	}
	read($c, my $body, $len) if $len;
	my %q = $path =~ /[?&](\w+)=([^&]*)/g;
	if ($path =~ m{^/v2/health/ready}) {
		reply($c, time - $t0 >= $boot ? 200 : 503, "health\n");
	} elsif ($path =~ m{^/sse}) {
		my $n = $q{n} // 5;
		my $ms = $q{ms} // 200;
		print $c "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
		for my $i (1 .. $n) {
			my $ev = "data: event $i\n\n";
			printf $c "%x\r\n%s\r\n", length($ev), $ev;
			sleep($ms / 1000);
		}
		print $c "0\r\n\r\n";
	} elsif ($path =~ m{^(?:/\w+)?/slow}) {	# also under a location's prefix: /lo/slow
		note_log("start", $q{id});
		sleep(($q{ms} // 1000) / 1000);
		note_log("end", $q{id});
		reply($c, 200, "slow $q{id}\n");
	} elsif ($path =~ m{^/metrics} && $o{'--metrics'}) {
		open my $mf, '<', $o{'--metrics'};
		reply($c, 200, $mf ? do { local $/; <$mf> } // '' : '');
	} elsif ($path =~ m{^/die}) {
		kill 'KILL', getppid();
		sleep 0.5;
		exit 0;
	} elsif ($path =~ m{/headers(?:\?|$)}) {
		reply($c, 200, $hdrs);
	} elsif ($path =~ m{^/pid}) {
		reply($c, 200, getppid() . "\n");
	} else {
		reply($c, 200, "ok $path\n");
	}
	close $c;
	exit 0;
}
