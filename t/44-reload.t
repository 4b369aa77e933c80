# SIGHUP reloads the conf without dropping a held request; a bad conf is
# refused and the old one keeps serving; changed settings take effect;
# listeners follow the conf.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($body, $label) = digits_input(3);
my $slow = 'sleep 2; exec ' . WGGateway::worker_cmd();
my ($text, $port, $admin) = gw_conf(launch => $slow, upstream => 'idle_timeout 60s; hold 10 timeout=30s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

# a request held during a slow boot survives a reload
my $pid = fork // die;
if ($pid == 0) {
	my $r = gw_predict($g, $body, timeout => 60);
	POSIX::_exit($r->{status} == 200 && argmax_of($r->{content}) == $label ? 0 : 1);
}
ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 10), 'a request is held while the worker boots');
my $port2 = free_port();
(my $text2 = $text) =~ s/idle_timeout 60s;/idle_timeout 2s;/ or die;
$text2 =~ s/(server \{)/server {\n\tlisten 127.0.0.1:$port2;\n\tlocation \/ { proxy_pass digits; }\n}\n$1/;
spew($g->{conf}, $text2);
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 10), 'SIGHUP reloads the conf');
waitpid($pid, 0);
is($?, 0, 'the request held across the reload is answered with the right digit');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 1, 'the reload kept the booting replica: one cold start');

my $r = WG::http_post("http://127.0.0.1:$port2/predict", $body, timeout => 30);
is($r->{status}, 200, 'a listener added by the reload answers');

# a bad conf is refused; the old one keeps serving
spew($g->{conf}, "daemon off;\nbogus_directive 1;\n");
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload failed.*bogus_directive.*:2/ }, 10), 'a bad conf on SIGHUP is logged with file and line');
$r = gw_predict($g, $body);
is($r->{status}, 200, 'the old conf keeps serving after a failed reload');

# the changed idle_timeout (60s -> 2s) took effect
ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 30), 'the new idle_timeout stops the idle worker');

# removing the second server closes its listener
spew($g->{conf}, $text2 =~ s/server \{\n\tlisten 127.0.0.1:$port2;\n\tlocation \/ \{ proxy_pass digits; \}\n\}\n//r);
kill 'HUP', $g->{pid};
ok(wait_until(sub { my @n = gw_log($g) =~ /reload done/g; @n >= 2 }, 10), 'the next reload is done');
ok(wait_until(sub { !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port2") }, 10), 'a listener removed from the conf is closed');

# a changed redis line waits for a restart (the fleet's locks live in the old one), and says so
my $rport = free_port();
spew($g->{conf}, ($text2 =~ s/server \{\n\tlisten 127.0.0.1:$port2;\n\tlocation \/ \{ proxy_pass digits; \}\n\}\n//r)
	=~ s/^(daemon off;)$/$1\nredis 127.0.0.1:$rport;/mr);
kill 'HUP', $g->{pid};
ok(wait_until(sub { my @n = gw_log($g) =~ /reload done/g; @n >= 3 }, 10), 'a reload that adds a redis line is done');
like(gw_log($g), qr/\[warn\].*the "redis" line changed in .*takes effect at the next start, this gateway stays on no redis/,
	'and the log says the redis line takes effect at the next start');
$r = gw_predict($g, $body, timeout => 30);
is($r->{status}, 200, 'the gateway goes on serving without the redis it was not started with');

done_testing;
