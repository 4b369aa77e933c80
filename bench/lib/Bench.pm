# Bench: what bench/proxy and bench/cold share. Finds the programs, picks
# free loopback ports, starts processes in their own process groups and stops
# every one of them when the bench ends (normally, on die, or on a signal),
# talks plain HTTP/1.1 and runs wrk.
package Bench;
use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

our @EXPORT = qw(src bin tmpdir free_port start_proc stop_proc stop_all adopt_proc wait_http
  http_req wrk_run fmt_ms slurp spew median);

my $src = abs_path(dirname(__FILE__) . '/../..');
my $build = $ENV{WG_BUILD} // $src;

# A path in the source tree.
sub src { return "$src/$_[0]" }

# A program from the build tree ($WG_BUILD, else the source tree itself).
sub bin {
	my ($name) = @_;
	my %dir = ('wakegate' => 'gateway', 'wakegate-worker' => 'gpu-worker', 'evhttp-floor' => 'bench');
	my $p = "$build/" . ($dir{$name} // '.') . "/$name";
	die "bench: no $p: build it first (make $dir{$name}/$name), or set WG_BUILD\n" unless -x $p;
	return $p;
}

my $tmp;
sub tmpdir { $tmp //= tempdir('wg-bench-XXXXXX', TMPDIR => 1, CLEANUP => 1); return $tmp }

# A loopback port nobody listens on right now: the kernel picks it.
sub free_port {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1)
		or die "bench: cannot bind a free port: $!\n";
	my $p = $s->sockport;
	close $s;
	return $p;
}

my %procs;    # pid => name; every process group this bench started
my %seq;      # pid => start order
my $nseq = 0;
my $owner = $$;

# Starts @cmd in its own process group, stdout and stderr to $log.
sub start_proc {
	my ($name, $log, @cmd) = @_;
	my $pid = fork // die "bench: fork: $!\n";
	if (!$pid) {
		setpgrp(0, 0);
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log or die "bench: $log: $!\n";
		open STDERR, '>&', \*STDOUT;
		exec @cmd or die "bench: exec $cmd[0]: $!\n";
	}
	$procs{$pid} = $name;
	$seq{$pid} = $nseq++;
	return $pid;
}

# SIGTERM to the process group, SIGKILL after $grace seconds; reaps it.
sub stop_proc {
	my ($pid, $grace) = @_;
	return unless $pid && $procs{$pid};
	$grace //= 10;
	kill 'TERM', -$pid;
	my $until = time + $grace;
	while (time < $until) {
		my $w = waitpid($pid, WNOHANG);
		last if $w == $pid || ($w < 0 && !kill 0, $pid);
		sleep 0.02;
	}
	if (kill 0, $pid) {
		kill 'KILL', -$pid;
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	kill 'KILL', -$pid;    # anything its group left behind (a launched worker)
	delete $procs{$pid};
	delete $seq{$pid};
}

# A process this bench did not fork but caused (a worker that wakegate
# launched in its own process group): stopped with the rest at the end.
sub adopt_proc {
	my ($pid, $name) = @_;
	return if !$pid || $procs{$pid};
	$procs{$pid} = $name;
	$seq{$pid} = $nseq++;
}

# In start order, so that a gateway stops (and stops its workers) before an
# adopted worker is killed.
sub stop_all { stop_proc($_, 10) for sort { $seq{$a} <=> $seq{$b} } keys %procs }

END { stop_all() if $$ == $owner }
$SIG{$_} = sub { print STDERR "bench: interrupted, stopping everything\n"; stop_all(); exit 130 }
	for qw(INT TERM HUP);

# One HTTP/1.1 request on a fresh connection (Connection: close).
# Returns (code, {lowercase header => value}, body); code 0 when it failed.
sub http_req {
	my ($method, $port, $path, $body, $timeout) = @_;
	$timeout //= 30;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
		Timeout => $timeout) or return (0, {}, "connect: $!");
	$body //= '';
	my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n";
	$req .= "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n" if $method eq 'POST';
	print $s "$req\r\n$body";
	my $resp = '';
	my $until = time + $timeout;
	while (time < $until) {
		my $rin = '';
		vec($rin, fileno($s), 1) = 1;
		last unless select($rin, undef, undef, 0.5) >= 0;
		next unless vec($rin, fileno($s), 1);
		my $n = sysread($s, my $buf, 65536);
		last unless $n;
		$resp .= $buf;
	}
	close $s;
	my ($head, $rbody) = split /\r\n\r\n/, $resp, 2;
	return (0, {}, 'no answer') unless defined $head && $head =~ m{^HTTP/1\.[01] (\d+)};
	my $code = $1;
	my %h;
	for (split /\r\n/, $head) { $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
	return ($code, \%h, $rbody // '');
}

# Polls GET $path until it answers 200; the time it took, or dies.
sub wait_http {
	my ($port, $path, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < ($timeout // 30)) {
		my ($code) = http_req('GET', $port, $path, undef, 2);
		return time - $t0 if $code == 200;
		sleep 0.05;
	}
	die "bench: nothing answered 200 on 127.0.0.1:$port$path after ${\($timeout // 30)}s\n";
}

# "1.23ms" / "850.00us" / "1.02s" -> milliseconds
sub to_ms {
	my ($v) = @_;
	return undef unless defined $v && $v =~ /^([\d.]+)(us|ms|s|m)$/;
	return { us => $1 / 1000, ms => $1, s => $1 * 1000, m => $1 * 60000 }->{$2};
}

# Runs wrk against $url and returns {rps, p50, p99 (ms), requests, errors, non2xx}.
# %o: threads, connections, duration (seconds), script (lua), body (file for the
# POST script, passed in WG_BENCH_BODY).
sub wrk_run {
	my ($url, %o) = @_;
	my @cmd = ('wrk', '-t', $o{threads} // 2, '-c', $o{connections} // 32, '-d', ($o{duration} // 5) . 's',
		'--latency', '--timeout', '10s');
	push @cmd, '-s', $o{script} if $o{script};
	local $ENV{WG_BENCH_BODY} = $o{body} if $o{body};
	open my $fh, '-|', @cmd, $url or die "bench: cannot run wrk: $!\n";
	my $out = do { local $/; <$fh> };
	close $fh;
	my %r = (raw => $out, errors => 0, non2xx => 0);
	$r{rps} = $1 if $out =~ /^Requests\/sec:\s+([\d.]+)/m;
	$r{requests} = $1 if $out =~ /^\s*(\d+) requests in/m;
	$r{p50} = to_ms($1) if $out =~ /^\s+50%\s+(\S+)/m;
	$r{p99} = to_ms($1) if $out =~ /^\s+99%\s+(\S+)/m;
	$r{non2xx} = $1 if $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
	if ($out =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) {
		$r{errors} = $1 + $2 + $3 + $4;
	}
	die "bench: wrk gave no result for $url:\n$out\n" unless defined $r{rps} && defined $r{p99};
	return \%r;
}

sub fmt_ms {
	my ($v) = @_;
	return '-' unless defined $v;
	return sprintf('%.0fms', $v) if $v >= 100;
	return sprintf('%.1fms', $v) if $v >= 10;
	return sprintf('%.2fms', $v);
}

sub median {
	my @v = sort { $a <=> $b } grep { defined } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub slurp { my ($f) = @_; open my $fh, '<', $f or return ''; local $/; return <$fh> }

sub spew { my ($f, $s) = @_; open my $fh, '>', $f or die "bench: $f: $!\n"; print $fh $s; close $fh }

1;
