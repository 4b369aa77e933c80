# WGBrowser: drives Debian's headless Chromium through the DevTools protocol
# on a pipe (--remote-debugging-pipe: commands on its fd 3, answers on fd 4,
# one JSON message per NUL), so that a test can load a page, let it run in
# real time, click, read the DOM and take a screenshot. No network port and
# no module beyond core Perl.
package WGBrowser;
use strict;
use warnings;
use Exporter 'import';
use JSON::PP;
use IO::Select;
use POSIX ();
use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC);
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time sleep);
use WG;

our @EXPORT = qw(browser_path browser_start browser_open browser_eval browser_wait browser_screenshot browser_stop);

sub browser_path {
	for my $b (qw(chromium chromium-browser google-chrome)) {
		for my $d (split /:/, $ENV{PATH}) { return "$d/$b" if -x "$d/$b" }
	}
	return undef;
}

# browser_start(width => W, height => H) -> handle
sub browser_start {
	my (%o) = @_;
	my $bin = browser_path() or die "no chromium";
	my $profile = tmpdir() . "/chromium-$$-" . int(rand(1e6));
	pipe(my $cmd_r, my $cmd_w) or die "pipe: $!";
	pipe(my $res_r, my $res_w) or die "pipe: $!";
	my $log = tmpdir() . '/chromium.log';
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		POSIX::setsid();
		# through high fds first, so that dup2 onto 3 and 4 never meets itself
		my $a = POSIX::dup(fileno $cmd_r); my $b = POSIX::dup(fileno $res_w);
		POSIX::dup2($a, 3); POSIX::dup2($b, 4);
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log; open STDERR, '>&', \*STDOUT;
		{ exec $bin, '--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe',
			"--user-data-dir=$profile", '--no-first-run', '--disable-extensions', '--disable-sync',
			'--disable-background-networking', '--disable-dev-shm-usage', '--hide-scrollbars',
			'--window-size=' . ($o{width} // 1000) . ',' . ($o{height} // 900), 'about:blank' };
		POSIX::_exit(127);
	}
	close $cmd_r; close $res_w;
	my $old = select $cmd_w; $| = 1; select $old;
	my $br = { pid => $pid, w => $cmd_w, r => $res_r, buf => '', id => 0, sel => IO::Select->new($res_r), log => $log };
	my $t = cdp($br, 'Target.createTarget', { url => 'about:blank' }, undef, 30);
	my $a = cdp($br, 'Target.attachToTarget', { targetId => $t->{targetId}, flatten => JSON::PP::true }, undef, 30);
	$br->{session} = $a->{sessionId};
	cdp($br, 'Emulation.setDeviceMetricsOverride', { width => $o{width} // 1000, height => $o{height} // 900,
		deviceScaleFactor => 1, mobile => JSON::PP::false });
	return $br;
}

# One command; returns its result, dies on a protocol error or after timeout s.
sub cdp {
	my ($br, $method, $params, $session, $timeout) = @_;
	my $id = ++$br->{id};
	my $msg = { id => $id, method => $method, params => $params // {} };
	$session //= $br->{session};
	$msg->{sessionId} = $session if $session;
	print { $br->{w} } encode_json($msg) . "\0";
	my $end = time + ($timeout // 30);
	while (time < $end) {
		while ($br->{buf} =~ s/^([^\0]*)\0//) {
			my $m = decode_json($1);
			next unless defined $m->{id} && $m->{id} == $id;
			die "$method: $m->{error}{message}\n" if $m->{error};
			return $m->{result};
		}
		next unless $br->{sel}->can_read(0.2);
		my $n = sysread($br->{r}, $br->{buf}, 1 << 20, length $br->{buf});
		die "chromium closed the pipe:\n" . slurp($br->{log}) unless $n;
	}
	die "$method: no answer in ${\ ($timeout // 30)} s\n";
}

sub browser_open { my ($br, $url) = @_; cdp($br, 'Page.navigate', { url => $url }) }

# The value of a JavaScript expression in the page (undef on an exception).
sub browser_eval {
	my ($br, $js) = @_;
	my $r = cdp($br, 'Runtime.evaluate', { expression => $js, returnByValue => JSON::PP::true });
	if (my $e = $r->{exceptionDetails}) {
		# a broken expression in a test should say so, not read as "no value"
		Test::More::diag("browser_eval: " . ($e->{exception}{description} // $e->{text}) . "\n  in: $js");
		return undef;
	}
	return $r->{result}{value};
}

# Polls a JavaScript expression until it is true, up to timeout s.
sub browser_wait {
	my ($br, $js, $timeout) = @_;
	return wait_until(sub { browser_eval($br, "!!($js)") }, $timeout // 20);
}

sub browser_screenshot {
	my ($br, $file) = @_;
	my $r = cdp($br, 'Page.captureScreenshot', { format => 'png', captureBeyondViewport => JSON::PP::true });
	spew($file, decode_base64($r->{data}));
	return -s $file;
}

sub browser_stop {
	my ($br) = @_;
	eval { cdp($br, 'Browser.close', {}, '', 5) };
	close $br->{w};
	my $end = time + 10;
	while (time < $end) { return if waitpid($br->{pid}, POSIX::WNOHANG()) == $br->{pid}; sleep 0.05 }
	kill 'KILL', -$br->{pid}; kill 'KILL', $br->{pid};
	waitpid($br->{pid}, 0);
}

1;
