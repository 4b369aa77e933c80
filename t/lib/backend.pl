#!/usr/bin/perl
# backend.pl: a small HTTP/1.1 backend with misbehaving modes, for the proxy
# tests. One process a connection (fork), keep-alive until the peer closes.
#
#   backend.pl --port N --log FILE [--full]
#
# The log gets one line per event: "accept", "request METHOD URI",
# "closed-by-peer PATH" (a streaming/never answer saw its client go).
# --full: listen with a full accept queue and never accept (connect timeout).
#
# Paths (query arguments in brackets):
#   /echo            JSON: method, uri, headers, body_len, body_md5, pid
#   /big[size]       size bytes of a fixed pattern, Content-Length
#   /chunked[n]      n chunks "chunk I\n", chunked encoding
#   /sse[n,ms]       text/event-stream, n events ms apart, chunked
#   /close-mid-body  Content-Length 1000, 100 bytes, close
#   /close-mid-headers  half a status line and headers, close
#   /close-no-answer close without a byte
#   /garbage         not HTTP at all
#   /huge-header     a 200 KB header
#   /never           reads the request, never answers
#   /status[code]    an empty answer with that status
#   /slow-headers[ms] headers after ms
#   /then-close[ms]  answers (keep-alive), waits ms, closes without reading on
#   /reject-early    answers 413 before reading the body, closes (POST it)
use strict;
use warnings;
use IO::Socket::INET;
use Socket qw(SOMAXCONN);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use Digest::MD5 qw(md5_hex);
use IO::Select;

my %o = (port => 0, log => '/dev/null', full => 0);
while (@ARGV) {
	my $a = shift @ARGV;
	if ($a eq '--port') { $o{port} = shift @ARGV }
	elsif ($a eq '--log') { $o{log} = shift @ARGV }
	elsif ($a eq '--full') { $o{full} = 1 }
	else { die "backend.pl: unknown argument $a\n" }
}
$SIG{PIPE} = 'IGNORE';

sub logline {
	my ($l) = @_;
	open my $fh, '>>', $o{log} or return;
	print $fh "$l\n";
	close $fh;
}

if ($o{full}) {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $o{port},
		Listen => 1, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
	# fill the accept queue so that further SYNs are dropped
	my @fill;
	for (1 .. 8) {
		my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$o{port}", Blocking => 0);
		push @fill, $c if $c;
	}
	logline("full");
	sleep 3600 while 1;
}

my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $o{port},
	Listen => SOMAXCONN, ReuseAddr => 1, Proto => 'tcp') or die "listen: $!";
$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
$SIG{TERM} = sub { kill 'TERM', -$$ if getpgrp() == $$; exit 0 };
logline("ready");

while (1) {
	my $c = $srv->accept or next;
	logline("accept");
	my $pid = fork;
	if (!defined $pid) { close $c; next }
	if ($pid == 0) {
		$SIG{TERM} = 'DEFAULT';
		close $srv;
		serve($c);
		exit 0;
	}
	close $c;
}

# Reads one request; returns (method, uri, headers{lc}, body) or () at EOF.
sub read_request {
	my ($c, $bufref) = @_;
	while ($$bufref !~ /\r\n\r\n/) {
		my $n = sysread($c, $$bufref, 65536, length $$bufref);
		return () unless $n;
	}
	$$bufref =~ s/^(.*?)\r\n\r\n//s;
	my @lines = split /\r\n/, $1;
	my ($method, $uri) = split / /, shift @lines;
	my (%h, @order);
	for (@lines) {
		my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
		push @order, [$k, $v];
		my $lk = lc $k;
		$h{$lk} = exists $h{$lk} ? "$h{$lk}, $v" : $v;
	}
	my $body = '';
	if ($uri =~ m{^/reject-early}) {
		logline("request $method $uri");
		writeall($c, "HTTP/1.1 413 Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large");
		shutdown($c, 1);
		sleep 0.5;
		exit 0;
	}
	if (my $len = $h{'content-length'}) {
		while (length($$bufref) < $len) {
			my $n = sysread($c, $$bufref, 65536, length $$bufref);
			return () unless $n;
		}
		$body = substr($$bufref, 0, $len, '');
	}
	return ($method, $uri, \%h, $body, \@order);
}

sub writeall {
	my ($c, $data) = @_;
	while (length $data) {
		my $n = syswrite($c, $data);
		return 0 unless defined $n && $n > 0;
		substr($data, 0, $n, '');
	}
	return 1;
}

sub json_str {
	my ($s) = @_;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
	return "\"$s\"";
}

sub answer {
	my ($c, $code, $hdrs, $body, $head) = @_;
	my $r = "HTTP/1.1 $code X\r\n";
	$r .= "$_->[0]: $_->[1]\r\n" for @$hdrs;
	$r .= "Content-Length: " . length($body) . "\r\n\r\n";
	$r .= $body unless $head;
	return writeall($c, $r);
}

sub peer_closed {
	my ($c) = @_;
	my $sel = IO::Select->new($c);
	return 0 unless $sel->can_read(0);
	my $buf;
	my $n = sysread($c, $buf, 1, 0);
	return !$n;
}

sub serve {
	my ($c) = @_;
	my $buf = '';
	while (1) {
		my ($m, $uri, $h, $body, $order) = read_request($c, \$buf);
		return unless defined $m;
		logline("request $m $uri");
		my ($path, $q) = split /\?/, $uri, 2;
		my %q = map { split /=/, $_, 2 } split /&/, ($q // '');
		my $head = $m eq 'HEAD';
		if ($path eq '/echo') {
			my $hj = join ',', map { json_str($_) . ':' . json_str($h->{$_}) } sort keys %$h;
			my $j = sprintf('{"method":%s,"uri":%s,"headers":{%s},"body_len":%d,"body_md5":"%s","pid":%d}',
				json_str($m), json_str($uri), $hj, length $body, md5_hex($body), $$);
			answer($c, 200, [['Content-Type', 'application/json'], ['Keep-Alive', 'timeout=5'],
				['X-Backend', 'yes'], ['Proxy-Agent', 'backend.pl'], ['X-Request-Id', 'from-backend'],
				['Connection', 'keep-alive, X-Secret'], ['X-Secret', 'hop']], $j, $head) or return;
		} elsif ($path eq '/big') {
			my $size = $q{size} // 1048576;
			my $pat = join '', map { sprintf "%07d\n", $_ } 0 .. 1023;
			my $data = $pat x (int($size / length $pat) + 1);
			answer($c, 200, [['Content-Type', 'application/octet-stream']], substr($data, 0, $size), $head) or return;
		} elsif ($path eq '/chunked') {
			my $n = $q{n} // 5;
			writeall($c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n") or return;
			for my $i (1 .. $n) {
				my $d = "chunk $i\n";
				writeall($c, sprintf("%x\r\n%s\r\n", length $d, $d)) or return;
			}
			writeall($c, "0\r\n\r\n") or return;
		} elsif ($path eq '/sse') {
			my ($n, $ms) = ($q{n} // 5, $q{ms} // 100);
			writeall($c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n") or return;
			for my $i (1 .. $n) {
				my $d = "data: event $i\n\n";
				if (!writeall($c, sprintf("%x\r\n%s\r\n", length $d, $d)) || peer_closed($c)) {
					logline("closed-by-peer $path");
					return;
				}
				sleep($ms / 1000);
			}
			writeall($c, "0\r\n\r\n") or return;
		} elsif ($path eq '/close-mid-body') {
			writeall($c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" . ('x' x 100));
			sleep 0.2;
			return;
		} elsif ($path eq '/close-mid-headers') {
			writeall($c, "HTTP/1.1 200 OK\r\nContent-Ty");
			sleep 0.2;
			return;
		} elsif ($path eq '/close-no-answer') {
			return;
		} elsif ($path eq '/garbage') {
			writeall($c, "this is not http at all\r\n\r\n");
			sleep 0.2;
			return;
		} elsif ($path eq '/huge-header') {
			answer($c, 200, [['X-Huge', 'h' x 200000]], "ok", $head) or return;
		} elsif ($path eq '/never') {
			my $sel = IO::Select->new($c);
			my $end = time + 60;
			while (time < $end) {
				if ($sel->can_read(0.05)) {
					my $n = sysread($c, my $x, 4096);
					if (!$n) { logline("closed-by-peer $path"); return }
				}
			}
			return;
		} elsif ($path eq '/status') {
			answer($c, $q{code} // 200, [], '', $head) or return;
		} elsif ($path eq '/then-close') {
			answer($c, 200, [], "bye\n", $head) or return;
			sleep(($q{ms} // 500) / 1000);
			return;
		} elsif ($path eq '/slow-headers') {
			sleep(($q{ms} // 500) / 1000);
			answer($c, 200, [], "slow\n", $head) or return;
		} else {
			answer($c, 404, [], "no such path\n", $head) or return;
		}
	}
}
