#!/usr/bin/perl
# raw-backend: the backend of bench/http-conformance and of the framing
# tests. It logs every raw byte it receives and every request it parses, so
# that a request smuggled through a proxy shows up as a request the client
# never sent.
#
#   raw-backend.pl --port P --log FILE [--oversend] [--status N]
#
# One process, select() over all connections (no fork: the log's order is
# the order of arrival). Each connection's bytes are parsed as HTTP/1.1
# requests: request line, headers, a body framed by Content-Length or
# chunked. For each parsed request the log gets one line
#   REQ <conn> <method> <target> body=<n> hdr=<name:value|...>
# and for each read
#   RAW <conn> <bytes, with \xHH for anything not printable>
# Requests for /wg-health are answered but not logged (the proxies' health
# checks). Every request gets "200 ok <target>" (--status: another code) with a Content-Length; with
# --oversend, a target that contains "oversend" gets its answer followed by a
# whole second response ("HTTP/1.1 200 OK ... SMUGGLED-RESPONSE") on the
# same write: what a proxy must not hand to the next client. The status of
# that first answer comes from "code=N" in the target (HEAD, 204 and 304
# are answered without a body, as RFC 9110 says, before the extra bytes).
# A target with "dupcl" gets two different Content-Length headers; one with
# "early" gets a 103 Early Hints before its answer.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Getopt::Long;

my %o;
GetOptions(\%o, 'port=i', 'log=s', 'oversend', 'status=i') or die "usage: raw-backend.pl --port P --log FILE [--oversend]\n";
$SIG{TERM} = sub { exit 0 };
$SIG{PIPE} = 'IGNORE';
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $o{port}, Listen => 128,
	ReuseAddr => 1, Proto => 'tcp') or die "raw-backend: listen $o{port}: $!\n";
open my $log, '>>', $o{log} or die "raw-backend: $o{log}: $!\n";
$log->autoflush(1);
my $sel = IO::Select->new($srv);
my %buf;    # fileno => bytes not parsed yet
my %id;     # fileno => connection number
my $nconn = 0;

sub esc { my ($s) = @_; $s =~ s/([^\x21-\x7e ])/sprintf('\\x%02X', ord $1)/ge; return $s }

while (1) {
	for my $s ($sel->can_read) {
		if ($s == $srv) {
			my $c = $srv->accept or next;
			$sel->add($c);
			$buf{fileno $c} = '';
			$id{fileno $c} = ++$nconn;
			next;
		}
		my $fd = fileno $s;
		my $n = sysread($s, my $b, 65536);
		if (!$n) {
			$sel->remove($s);
			delete $buf{$fd};
			delete $id{$fd};
			close $s;
			next;
		}
		print $log "RAW $id{$fd} " . esc($b) . "\n";
		$buf{$fd} .= $b;
		while (defined(my $req = parse(\$buf{$fd}))) {
			if (ref $req ne 'HASH') {
				print $log "BAD $id{$fd} $req\n";
				$buf{$fd} = '';
				last;
			}
			answer($s, $req, $id{$fd});
		}
	}
}

# One request off the front of $$b: a hash, undef when incomplete, or an error string.
sub parse {
	my ($b) = @_;
	$$b =~ s/^(\r?\n)+//;
	my $end = index($$b, "\r\n\r\n");
	my $lf = index($$b, "\n\n");
	my ($hlen, $sep) = ($end, 4);
	($hlen, $sep) = ($lf, 2) if $lf >= 0 && ($end < 0 || $lf < $end);
	return undef if $hlen < 0;
	my $head = substr($$b, 0, $hlen);
	my @lines = split /\r?\n/, $head;
	my $rl = shift @lines;
	my ($m, $t, $v) = $rl =~ /^(\S+) (\S+) (HTTP\/\d\.\d)$/ or return "request line: " . esc($rl);
	my (%h, @hl);
	for my $l (@lines) {
		my ($k, $val) = $l =~ /^([^:]*):[ \t]*(.*?)[ \t]*$/ or return "header line: " . esc($l);
		push @hl, "$k:$val";
		push @{ $h{lc $k} }, $val;
	}
	my $rest = substr($$b, $hlen + $sep);
	my $body = '';
	if (($h{'transfer-encoding'}[0] // '') =~ /chunked/i) {
		my $p = 0;
		while (1) {
			my $e = index($rest, "\n", $p);
			return undef if $e < 0;
			my ($sz) = substr($rest, $p, $e - $p) =~ /^([0-9a-fA-F]+)/ or return 'chunk size';
			$sz = hex $sz;
			$p = $e + 1;
			if ($sz == 0) {
				# trailers up to an empty line
				while (1) {
					my $e2 = index($rest, "\n", $p);
					return undef if $e2 < 0;
					my $line = substr($rest, $p, $e2 - $p);
					$p = $e2 + 1;
					last if $line =~ /^\r?$/;
				}
				last;
			}
			return undef if length($rest) < $p + $sz + 2;
			$body .= substr($rest, $p, $sz);
			$p += $sz;
			$p += substr($rest, $p, 1) eq "\r" ? 2 : 1;
		}
		$$b = substr($rest, $p);
	} else {
		my $cl = $h{'content-length'}[0] // 0;
		$cl = 0 unless $cl =~ /^\d+$/;
		return undef if length($rest) < $cl;
		$body = substr($rest, 0, $cl);
		$$b = substr($rest, $cl);
	}
	return { method => $m, target => $t, version => $v, headers => \@hl, h => \%h, body => $body };
}

sub answer {
	my ($s, $r, $conn) = @_;
	print $log "REQ $conn $r->{method} " . esc($r->{target}) . " body=" . length($r->{body}) .
		" hdr=" . esc(join('|', @{ $r->{headers} })) . "\n" unless $r->{target} eq '/wg-health';
	my $code = $r->{target} =~ /code=(\d+)/ ? $1 : $r->{target} eq '/wg-health' ? 200 : $o{status} // 200;
	my $body = "ok $r->{target}\n";
	my $nobody = $r->{method} eq 'HEAD' || $code == 204 || $code == 304;
	my $resp = "HTTP/1.1 $code X\r\nContent-Type: text/plain\r\n";
	$resp .= $code == 204 ? '' : "Content-Length: " . length($body) . "\r\n";
	# "dupcl" in the target: a second, different Content-Length (a proxy must answer 502)
	$resp .= "Content-Length: " . (length($body) + 5) . "\r\n" if $r->{target} =~ /dupcl/;
	$resp .= "X-Backend-Conn: $conn\r\n\r\n";
	$resp .= $body unless $nobody;
	# "early" in the target: a 103 Early Hints first, as its own write
	if ($r->{target} =~ /early/) {
		syswrite($s, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
		select(undef, undef, undef, 0.05);
	}
	if ($o{oversend} && $r->{target} =~ /oversend/) {
		my $extra = "SMUGGLED-RESPONSE\n";
		$resp .= ($nobody ? 'body bytes that must not be there' : '') .
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($extra) .
			"\r\nX-Smuggled: 1\r\n\r\n$extra";
	}
	syswrite($s, $resp);
}
