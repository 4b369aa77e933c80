# WG: the test harness. Starts real processes on free loopback ports, talks
# real HTTP to them, and stops everything it started when the test ends.
package WG;
use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use HTTP::Tiny;
use POSIX qw(:sys_wait_h setsid);
use Time::HiRes qw(time sleep);
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

our @EXPORT = qw(sanitized free_port start_proc stop_proc wait_http http_get http_post
  bin src tmpdir start_redis wait_until slurp spew);

my $src = $ENV{WG_SRC} // abs_path(dirname(__FILE__) . '/../..');
my $build = $ENV{WG_BUILD} // $src;
my %procs;    # pid => name

# A replica move outside the gateway's move table aborts it (replica.c):
# every test that starts a gateway checks the table as it runs.
$ENV{WAKEGATE_STRICT_MOVES} = 1;

sub src { return "$src/$_[0]" }

# bin('wakegate-worker') -> the program in the build tree
sub bin {
	my ($name) = @_;
	my %dir = ('wakegate' => 'gateway', 'wakegate-worker' => 'gpu-worker',
		'wakegate-warmer' => 'warmer', 'model-check' => 'gpu-worker');
	my $p = "$build/" . ($dir{$name} // '.') . "/$name";
	die "no $p: build first\n" unless -x $p;
	return $p;
}

my $tmp;
sub tmpdir { $tmp //= tempdir('wg-test-XXXXXX', TMPDIR => 1, CLEANUP => 1); return $tmp }

# A port nobody listens on right now, below the kernel's ephemeral range:
# a port from that range can be taken as the source port of any outgoing
# connection between this check and the bind of the program under test.
# Ports are handed out one after another from a random start, so that tests
# running at once (make check runs three) rarely collide: a start made from
# the pid put tests started together a few ports apart, with overlapping
# runs of ports (t/118 lost a bind that way).
my ($port_lo, $port_hi) = (20000, 32767);
if (open my $r, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
	my ($lo) = split ' ', scalar <$r>;
	$port_hi = $lo - 1 if $lo && $lo - 1 > $port_lo + 2000;
}
my $next_port = $port_lo + int(rand($port_hi - $port_lo));
sub free_port {
	for (1 .. 1000) {
		my $p = $next_port++;
		$next_port = $port_lo if $next_port > $port_hi;
		my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
			Proto => 'tcp', ReuseAddr => 0) or next;
		close $s;
		return $p;
	}
	die "no free port";
}

# start_proc(name => 'x', cmd => [...], log => FILE, env => {...}) -> pid
# The process gets its own process group; stdout+stderr go to log.
sub start_proc {
	my %a = @_;
	my $log = $a{log} // tmpdir() . "/$a{name}.log";
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		setsid();
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log or die "$log: $!";
		open STDERR, '>&', \*STDOUT;
		$ENV{$_} = $a{env}{$_} for keys %{ $a{env} // {} };
		exec @{ $a{cmd} } or die "exec $a{cmd}[0]: $!";
	}
	$procs{$pid} = $a{name};
	return $pid;
}

# Sends sig (default TERM) and waits up to timeout seconds; KILLs after.
# Returns the exit status ($?) or undef when it had to be killed.
sub stop_proc {
	my ($pid, $sig, $timeout) = @_;
	return unless $pid && exists $procs{$pid};
	kill($sig // 'TERM', $pid);
	my $end = time + ($timeout // 10);
	while (time < $end) {
		my $r = waitpid($pid, WNOHANG);
		if ($r == $pid) { delete $procs{$pid}; return $? }
		sleep 0.02;
	}
	kill 'KILL', -$pid;
	kill 'KILL', $pid;
	waitpid($pid, 0);
	delete $procs{$pid};
	return undef;
}

# Polls until code returns true or timeout seconds pass.
sub wait_until {
	my ($code, $timeout) = @_;
	my $end = time + ($timeout // 10);
	while (time < $end) {
		return 1 if $code->();
		sleep 0.05;
	}
	return 0;
}

sub http { return HTTP::Tiny->new(timeout => $_[0] // 30, keep_alive => 0) }
sub http_get { my ($url, %o) = @_; return http($o{timeout})->get($url, { headers => $o{headers} // {} }) }
sub http_post {
	my ($url, $body, %o) = @_;
	return http($o{timeout})->post($url, { content => $body,
		headers => { 'Content-Type' => 'application/json', %{ $o{headers} // {} } } });
}

# Waits until GET url answers 200.
sub wait_http {
	my ($url, $timeout) = @_;
	return wait_until(sub { my $r = http(2)->get($url); $r->{status} == 200 }, $timeout);
}

# Starts a redis-server on a free port; returns (port, pid).
sub start_redis {
	my $port = free_port();
	my $dir = tmpdir();
	my $pid = start_proc(name => "redis-$port", cmd => ['redis-server', '--port', $port,
		'--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', $dir]);
	wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") }, 10)
		or die "redis did not start";
	return ($port, $pid);
}

# True when the program at path was built with a sanitizer (--enable-sanitizers):
# such a program checks itself and cannot run under valgrind.
sub sanitized {
	my ($path) = @_;
	open my $fh, '<:raw', $path or return 0;
	local $/;
	my $b = <$fh>;
	return $b =~ /__asan_init|__ubsan_handle|__tsan_init/ ? 1 : 0;
}

sub slurp { my ($f) = @_; open my $fh, '<', $f or return ''; local $/; return <$fh> }
sub spew { my ($f, $d) = @_; open my $fh, '>', $f or die "$f: $!"; print $fh $d; close $fh }

# Nothing a test started outlives it.
END {
	my $status = $?;
	for my $pid (keys %procs) {
		kill 'TERM', -$pid; kill 'TERM', $pid;
	}
	my $end = time + 5;
	while (%procs && time < $end) {
		for my $pid (keys %procs) { delete $procs{$pid} if waitpid($pid, WNOHANG) == $pid }
		sleep 0.02;
	}
	for my $pid (keys %procs) { kill 'KILL', -$pid; kill 'KILL', $pid; waitpid($pid, 0) }
	$? = $status;
}

1;
