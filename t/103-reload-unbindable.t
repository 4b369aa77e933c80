# SIGHUP into a conf that parses (wakegate -t says so) but whose new
# listener cannot be opened, because another process holds the port: the
# reload fails as a whole (wakegate(8), SIGHUP: "on error the error is
# logged and the old conf keeps serving"), the log says why, and the gateway
# goes on serving on the old conf: its locations, its limit_req state, its
# warm replica. Once the port is free the same conf reloads. t/44 reloads
# only into confs that bind or do not parse.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $be = backend_cmd();
my ($text, $port, $admin) = gw_conf(launch => $be, upstream => 'warmup off; idle_timeout 60s;',
	extra => 'limit_req_zone $binary_remote_addr zone=lim:1m rate=1r/m;');
$text =~ s{(location / \{ proxy_pass digits; \})}
	{$1\n\tlocation /lim/ { proxy_pass digits; limit_req zone=lim nodelay; limit_req_status 429; }} or die;
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub get { return WG::http_get("$g->{url}$_[0]", timeout => 30) }
sub reloads { my ($what) = @_; my @n = gw_log($g) =~ /$what/g; return scalar @n }

# the old conf: / and /lim/ are served, /lim/ is limited to one request a minute
my $r = get('/a');
is("$r->{status} $r->{content}", "200 ok /a\n", 'the old conf serves /');
is(get('/lim/1')->{status}, 200, 'the first request to /lim/ passes its limit');
is(get('/lim/2')->{status}, 429, 'the second is refused by limit_req (1r/m)');

# the new conf: / goes, /lim/ loses its limit, /new/ comes, and a second
# server listens on a port another process holds
my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, ReuseAddr => 0)
	or die "listen: $!";
my $port2 = $busy->sockport;
(my $text2 = $text) =~ s{location / \{ proxy_pass digits; \}}{location /new/ { proxy_pass digits; }} or die;
$text2 =~ s{ limit_req zone=lim nodelay; limit_req_status 429;}{} or die;
$text2 .= "server {\n\tlisten 127.0.0.1:$port2;\n\tlocation / { proxy_pass digits; }\n}\n";
spew("$dir/new.conf", $text2);
my $t = `${\ bin('wakegate')} -t -p $dir -c $dir/new.conf 2>&1`;
is($?, 0, 'wakegate -t accepts the new conf (it parses; -t opens no listener)') or diag($t);

spew($g->{conf}, $text2);
kill 'HUP', $g->{pid};
ok(wait_until(sub { reloads(qr/reload failed, the old configuration stays: [^\n]*127\.0\.0\.1:$port2/) == 1 }, 20),
	'the reload fails and the log names the address it could not bind') or diag(gw_log($g));
is(reloads(qr/reload done/), 0, 'and it is not reported done');
ok(kill(0, $g->{pid}), 'the gateway is still running');

$r = get('/a');
is("$r->{status} $r->{content}", "200 ok /a\n", 'the old conf still serves / (the new one has no /)');
is(get('/lim/3')->{status}, 429, 'the old limit_req state still applies to /lim/');
my $st = gw_status($g)->{upstreams}{digits} // {};
is($st->{state}, 'READY', 'the replica stays READY');
is($st->{cold_starts}, 1, 'and was not restarted');
my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port2") or die;
my $acc = $busy->accept;
ok($acc, 'the busy port still belongs to the process that held it');
close $c;
close $acc if $acc;

# once the port is free, the same conf reloads and takes effect
close $busy;
kill 'HUP', $g->{pid};
ok(wait_until(sub { reloads(qr/reload done/) == 1 }, 20), 'with the port free the same conf reloads') or diag(gw_log($g));
is(get('/a')->{status}, 404, 'now / is gone');
$r = get('/new/x');
is("$r->{status} $r->{content}", "200 ok /new/x\n", 'and /new/ is served');
is(get('/lim/4')->{status}, 200, '/lim/ has no limit any more');
$r = WG::http_get("http://127.0.0.1:$port2/b", timeout => 30);
is("$r->{status} $r->{content}", "200 ok /b\n", 'the new listener answers');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 1, 'the replica lived through both reloads');

is(stop_proc($g->{pid}, 'TERM', 30), 0, 'the gateway exits 0');
done_testing;
