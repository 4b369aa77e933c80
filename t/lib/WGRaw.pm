# WGRaw: raw HTTP for the framing tests (t/111..113): bytes sent as they are on
# a new connection, the reply read until the server closes or goes quiet,
# and bench/lib/raw-backend.pl (logs every byte and request it gets) as the
# upstream.
package WGRaw;
use strict;
use warnings;
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);
use WG;

our @EXPORT = qw(raw_exchange raw_backend_launch statuses backend_log);

# raw_exchange(port, bytes, quiet => S) -> (reply, closed): reads until the
# server closes, or until it has said nothing for `quiet` seconds (1) after
# its last byte (a kept-alive connection), 30s at most.
sub raw_exchange {
	my ($port, $bytes, %o) = @_;
	my $quiet = $o{quiet} // 1;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10)
		or die "connect $port: $!";
	local $SIG{PIPE} = 'IGNORE';
	syswrite($s, $bytes);
	my $sel = IO::Select->new($s);
	my ($got, $closed, $last, $t0) = ('', 0, time, time);
	while (time - $last < $quiet && time - $t0 < 30) {
		next unless $sel->can_read(0.05);
		my $n = sysread($s, my $b, 65536);
		if (!$n) { $closed = 1; last }
		$got .= $b;
		$last = time;
	}
	close $s;
	return ($got, $closed);
}

# The status codes of every answer in a reply, in order: "200,400".
sub statuses { my ($r) = @_; my @s = $r =~ /(?:^|\n)HTTP\/\d\.\d (\d{3})/g; return join ',', @s }

# A launch exec command running the raw backend, logging to $log.
sub raw_backend_launch {
	my ($log, @opt) = @_;
	return 'exec perl ' . src('bench/lib/raw-backend.pl') . ' --port $port --log ' . $log . ' ' . join(' ', @opt);
}

# The backend's log lines (REQ/BAD, or all with raw => 1).
sub backend_log {
	my ($log, %o) = @_;
	my @l = split /\n/, WG::slurp($log);
	return $o{raw} ? @l : grep { /^(REQ|BAD) / } @l;
}

1;
