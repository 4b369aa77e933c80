# keepalive adaptive: the gateway reads the idle-gap histogram from Redis at
# start, decides from it (a pre-warm for regular gaps, the fixed fallback
# with too few of them), shows the decision in /status and the log, stops an
# idle worker after the decided keep-alive, and writes new gaps back to Redis.
# The policy's bins are minutes, so the decisions are checked through /status
# rather than waited for.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($rport) = start_redis();
my ($body) = digits_input(2);

sub redis { my $out = `redis-cli -p $rport @_`; chomp $out; return $out }

sub ka { return gw_status($_[0])->{upstreams}{digits}{keepalive} // {} }

# --- 20 gaps of 30 minutes: regular, so stop at once and wake before the next one
{
	redis('SET', 'wgka1:hist:digits', '"v1 o0 30:20"');
	my ($text, $port, $admin) = gw_conf(upstream => 'keepalive adaptive; idle_timeout 5m; stop_grace 2s;',
		extra => "redis 127.0.0.1:$rport prefix=wgka1:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { ka($g)->{gaps_loaded} }, 30), 'the gateway reads the gap histogram from Redis');
	my $k = ka($g);
	is($k->{policy}, 'adaptive', '/status shows the adaptive policy');
	is($k->{gaps}, 20, '/status counts the 20 gaps from Redis');
	is($k->{reason}, 'pre-warm', 'regular gaps lead to a pre-warm');
	is($k->{keepalive_seconds}, 0, 'the worker is stopped as soon as it is idle');
	# head of the gaps 30m, less a 1m margin, less the default 30s boot: 1710s; tail 31m plus 1m: 1920s
	is($k->{prewarm_seconds}, 1710, 'the pre-warm comes 1710s after the last request');
	is($k->{prewarm_until_seconds}, 1920, 'and a pre-warmed worker stays up to 1920s');
	like(gw_log($g), qr/keepalive adaptive: keep-alive 0s, pre-warm at 1710s until 1920s \(pre-warm, 20 gaps\)/,
		'the log says what the policy decided and why');

	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'a request wakes the worker');
	ok(wait_until(sub { gw_status($g)->{upstreams}{digits}{state} eq 'STOPPED' }, 30),
		'with a keep-alive of 0s the idle worker stops at once, not after idle_timeout');
	like(gw_log($g), qr/READY -> DRAINING \(idle for 0\.\d+s\)/, 'the log shows it stopped within a second of idling');
	ok(ka($g)->{prewarm_seconds} > 1710, 'the measured boot time replaces the default in the decision');

	$r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'the next request is answered');
	is(ka($g)->{gaps}, 21, 'the gap before it is counted');
	ok(wait_until(sub { redis('GET', 'wgka1:hist:digits') eq 'v1 o0 0:1 30:20' }, 30),
		'the new gap is merged into the histogram in Redis');
	is(gw_status($g)->{upstreams}{digits}{cold_starts}, 2, 'both wakes were cold starts for a request') or diag(gw_log($g));
	stop_proc($g->{pid});
}

# --- 3 gaps only: too few, the fixed keep-alive (idle_timeout) holds
{
	redis('SET', 'wgka2:hist:digits', '"v1 o0 30:3"');
	my ($text, $port, $admin) = gw_conf(upstream => 'keepalive adaptive min=2m; idle_timeout 7s;',
		extra => "redis 127.0.0.1:$rport prefix=wgka2:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { ka($g)->{gaps_loaded} }, 30), 'the second gateway reads its histogram');
	my $k = ka($g);
	is($k->{gaps}, 3, 'it has 3 gaps');
	is($k->{reason}, 'few samples', 'with too few gaps the policy falls back to fixed, saying why');
	is($k->{keepalive_seconds}, 7, 'the fallback is idle_timeout');
	ok(!defined $k->{prewarm_seconds}, 'and there is no pre-warm');
	like(gw_log($g), qr/keepalive adaptive: keep-alive 7s \(few samples, 3 gaps\)/, 'the log says so');
	like(WG::http_get("$g->{admin_url}/metrics")->{content}, qr/^wakegate_keepalive_seconds\{upstream="digits"\} 7$/m,
		'/metrics shows the keep-alive in force');
	stop_proc($g->{pid});
}

# --- a histogram Redis cannot parse is replaced, not trusted
{
	redis('SET', 'wgka3:hist:digits', 'garbage');
	my ($text, $port, $admin) = gw_conf(upstream => 'keepalive adaptive; idle_timeout 7s;',
		extra => "redis 127.0.0.1:$rport prefix=wgka3:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { ka($g)->{gaps_loaded} }, 30), 'a gateway starts with a broken histogram in Redis');
	is(ka($g)->{gaps}, 0, 'it starts from no gaps');
	like(gw_log($g), qr/gap histogram in Redis cannot be read/, 'and says so in the log');
	stop_proc($g->{pid});
}

done_testing;
