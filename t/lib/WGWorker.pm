# WGWorker: helpers for the model and worker tests (t/10, t/11, t/20..22):
# run model-check, start wakegate-worker on a free port, send it requests on
# raw sockets (so that several can wait in its queue at once), read a metric.
package WGWorker;
use strict;
use warnings;
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time);
use WG;

our @EXPORT = qw(model_check worker_start worker_ready run_worker post_json error_of
	send_post read_reply worker_metric);

my $json = JSON::PP->new->canonical;

# Runs model-check to completion; returns { code, signal, out, err }. Its
# output goes through files in tmpdir() so that big outputs cannot block it.
sub model_check {
	my @args = @_;
	my $dir = tmpdir();
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		open STDOUT, '>', "$dir/mc.out" or die;
		open STDERR, '>', "$dir/mc.err" or die;
		exec bin('model-check'), @args or exit 127;
	}
	waitpid($pid, 0);
	return { code => $? >> 8, signal => $? & 127,
		out => scalar(slurp("$dir/mc.out")), err => scalar(slurp("$dir/mc.err")) };
}

# Starts a worker serving the digits model with extra flags and does not wait
# for it; returns (pid, base url, log file). WG's cleanup stops it.
sub worker_start {
	my (@flags) = @_;
	my $port = free_port();
	my $log = tmpdir() . "/worker-$port.log";
	my $pid = start_proc(name => "worker-$port", log => $log,
		cmd => [bin('wakegate-worker'), '--model', src('models/digits.safetensors'),
			'--listen', "127.0.0.1:$port", @flags]);
	return ($pid, "http://127.0.0.1:$port", $log);
}

# Starts a worker as worker_start and waits (30s) until it is ready; dies with
# its log if it never is. Returns (pid, port, log file).
sub worker_ready {
	my ($pid, $url, $log) = worker_start(@_);
	wait_http("$url/v2/health/ready", 30) or die "worker did not get ready:\n" . slurp($log);
	my ($port) = $url =~ /:(\d+)$/;
	return ($pid, $port, $log);
}

# Runs the worker to completion (it must exit on its own); returns (exit code, output).
sub run_worker {
	my (@args) = @_;
	my $worker = bin('wakegate-worker');
	my $out = `$worker @args 2>&1`;
	return ($? >> 8, $out);
}

# POSTs a body (a Perl structure is sent as JSON); returns HTTP::Tiny's answer.
sub post_json { my ($url, $body) = @_; return http_post($url, ref $body ? $json->encode($body) : $body) }

# The "error" field of a JSON answer, or '' when there is none.
sub error_of { my ($r) = @_; my $b = eval { $json->decode($r->{content}) } // {}; return $b->{error} // '' }

# Sends a POST on a new connection without waiting for the answer; returns
# the socket, which the caller hands to read_reply.
sub send_post {
	my ($port, $path, $body) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp') or die "connect: $!";
	print $s "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
		. "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
	return $s;
}

# Reads the whole answer (the worker closes) and closes the socket; returns
# { status, headers, body } or undef on timeout (default 30s).
sub read_reply {
	my ($s, $timeout) = @_;
	my $sel = IO::Select->new($s);
	my $buf = '';
	my $end = time + ($timeout // 30);
	while (time < $end) {
		next unless $sel->can_read(0.1);
		my $n = sysread($s, $buf, 65536, length $buf);
		last if !$n;
	}
	close $s;
	my ($head, $body) = split /\r\n\r\n/, $buf, 2;
	return undef unless defined $body && $head =~ m{^HTTP/1\.\d (\d+)};
	my %h = map { my ($k, $v) = split /:\s*/, $_, 2; (lc $k => $v) } split /\r\n/, $head;
	return { status => $1, headers => \%h, body => $body };
}

# One value from the worker's /metrics; $re matches the name and labels.
# Returns undef when the metric is not there.
sub worker_metric {
	my ($port, $re) = @_;
	my $m = http_get("http://127.0.0.1:$port/metrics")->{content} // '';
	return $m =~ /^$re (\S+)$/m ? $1 : undef;
}

1;
