# WGLimits: helpers for the rate-limit and degradation tests (t/52..54):
# nginx's leaky bucket computed from a rule, requests on raw sockets (so
# that a delayed one can be left waiting or abandoned), one metric's value.
package WGLimits;
use strict;
use warnings;
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use WG;
use WGGateway;

our @EXPORT = qw(bucket_counts raw_send raw_answer metric gw_conf_text);

# What nginx's limit_req does with n requests of one key that arrive
# together (the bucket leaks nothing between them: the rate is slow):
# (passed, delayed, rejected). delay: undef for nodelay.
sub bucket_counts {
	my (%o) = @_;
	my ($n, $burst, $delay) = ($o{n}, $o{burst} // 0, $o{delay});
	my ($excess, $seen, @c) = (0, 0, 0, 0, 0);
	for (1 .. $n) {
		my $new = $seen ? $excess + 1000 : 0;
		if ($new > $burst * 1000) { $c[2]++; next }
		($excess, $seen) = ($new, 1);
		if (defined $delay && $new > $delay * 1000) { $c[1]++ } else { $c[0]++ }
	}
	return @c;
}

# Sends one request on a new connection and returns the socket, unread.
sub raw_send {
	my ($port, $path, %h) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp', Timeout => 10)
		or die "connect $port: $!";
	my $hdr = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
	print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n${hdr}Connection: close\r\n\r\n";
	$s->flush;
	return $s;
}

# The whole answer on a raw_send() socket once the server closed it, without
# waiting: {status, headers, content}, or undef when it is not all there yet.
sub raw_answer {
	my ($s, $buf) = @_;
	$$buf //= '';
	my $sel = IO::Select->new($s);
	while ($sel->can_read(0)) {
		my $n = sysread($s, my $chunk, 65536);
		last unless defined $n;
		if ($n == 0) {
			my ($head, $body) = split /\r\n\r\n/, $$buf, 2;
			return undef unless defined $head && $head =~ m{^HTTP/1\.\d (\d+)};
			my %h;
			for (split /\r\n/, $head) { $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
			return { status => $1 + 0, headers => \%h, content => $body };
		}
		$$buf .= $chunk;
	}
	return undef;
}

# The value of one series on the admin /metrics (0 when absent).
sub metric {
	my ($g, $name, $labels) = @_;
	my $m = WG::http_get("$g->{admin_url}/metrics")->{content} // '';
	my $q = quotemeta("$name\{$labels\}");
	return $m =~ /^$q (\S+)$/m ? $1 + 0 : 0;
}

# A whole conf: main directives, upstream blocks and one server's locations.
sub gw_conf_text {
	my (%o) = @_;
	my $dir = tmpdir();
	my $port = free_port();
	my $admin = free_port();
	my $text = <<"EOC";
daemon off;
pid $dir/wakegate-$port.pid;
error_log $dir/error-$port.log @{[ $o{level} // "info" ]};
access_log $dir/access-$port.log;
admin_listen 127.0.0.1:$admin;
@{[ $o{main} // '' ]}
$o{upstreams}
server {
	listen 127.0.0.1:$port;
$o{locations}
}
EOC
	return ($text, $port, $admin);
}

1;
