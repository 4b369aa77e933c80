# The port an exec-launched worker gets ($port) lies below the kernel's
# ephemeral range, so that no outgoing connection can take it before the
# worker binds it; upstreams woken together get distinct ports; the
# replica_ports directive names the range instead.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;

my $eph_lo = 32768;
if (open my $r, '<', '/proc/sys/net/ipv4/ip_local_port_range') {
	my ($lo) = split ' ', scalar <$r>;
	$eph_lo = $lo if $lo;
}
plan skip_all => "the ephemeral range starts at $eph_lo: no room below it" if $eph_lo < 11000;

my $dir = tmpdir();
my @names = qw(alpha beta gamma);
my $admin = free_port();
my (%port, $text);
$text = <<"EOC";
daemon off;
pid $dir/wakegate-89.pid;
error_log $dir/error-89.log info;
admin_listen 127.0.0.1:$admin;
EOC
for my $n (@names) {
	$port{$n} = free_port();
	my $cmd = worker_cmd() =~ s/--name digits/--name $n/r;
	$text .= "upstream $n {\n\tlaunch exec \"$cmd\";\n\tidle_timeout 60s;\n\thold 100 timeout=30s;\n}\n"
	       . "server {\n\tlisten 127.0.0.1:$port{$n};\n\tlocation / { proxy_pass $n; }\n}\n";
}
my $g = gw_start(conf => $text, port => $port{alpha}, admin => $admin);
$g->{log} = "$dir/error-89.log";

# three cold upstreams, each woken by its own request, all at the same time
my ($body, $label) = digits_input(0);
my @kids;
for my $n (@names) {
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		my $r = WG::http_post("http://127.0.0.1:$port{$n}/predict", $body, timeout => 60);
		POSIX::_exit($r->{status} == 200 && (argmax_of($r->{content}) // -1) == $label ? 0 : 1);
	}
	push @kids, $pid;
}
my $good = 0;
for (@kids) { waitpid($_, 0); $good++ if $? == 0 }
is($good, 3, 'three upstreams woken at once all answer their first request');

my $st = gw_status($g)->{upstreams} // {};
my %url = map { $_ => ($st->{$_}{url} // '') } @names;
my @ports = map { $url{$_} =~ m{^http://127\.0\.0\.1:(\d+)$} ? $1 : 0 } @names;
is(scalar(grep { $_ } @ports), 3, '/status shows a replica URL on loopback for each upstream')
	or diag explain \%url;
is(scalar(grep { $_ > 0 && $_ < $eph_lo } @ports), 3,
	"every worker's port is below the kernel's ephemeral range (starts at $eph_lo)")
	or diag "ports: @ports";
my %seen = map { $_ => 1 } @ports;
is(scalar(keys %seen), 3, 'the three workers got three distinct ports') or diag "ports: @ports";
for my $i (0 .. $#names) {
	my $r = WG::http_get("http://127.0.0.1:$ports[$i]/v2/health/ready", timeout => 10);
	is($r->{status}, 200, "the $names[$i] worker itself answers on the port the gateway gave it");
}
like(gw_log($g), qr/upstream "alpha" replica 0: STOPPED -> BOOTING \(.* on http:\/\/127\.0\.0\.1:$ports[0]\)/,
	'the error log names the port the worker was started on');

# the port is chosen again on each wake, still below the range
WG::http_post("$g->{admin_url}/upstreams/alpha/sleep", '');
ok(wait_until(sub { (gw_status($g)->{upstreams}{alpha}{state} // '') eq 'STOPPED' }, 30), 'alpha is put to sleep');
my $r = WG::http_post("http://127.0.0.1:$port{alpha}/predict", $body, timeout => 60);
is($r->{status}, 200, 'a request after the sleep wakes alpha again and is answered');
my ($again) = (gw_status($g)->{upstreams}{alpha}{url} // '') =~ /:(\d+)$/;
ok($again && $again < $eph_lo && $again != $ports[1] && $again != $ports[2],
	'the new worker again has a port below the range that no running worker holds')
	or diag "port: " . ($again // 'none');

stop_proc($g->{pid}, 'TERM', 30);

# replica_ports: the conf names the range; one port in it serves one replica
my $only = free_port();
my ($port2, $admin2) = (free_port(), free_port());
my %slow = map { $_ => 'sleep 2; exec ' . (worker_cmd() =~ s/--name digits/--name $_/r) } qw(first second);
my $text2 = <<"EOC";
daemon off;
pid $dir/wakegate-89b.pid;
error_log $dir/error-89b.log info;
admin_listen 127.0.0.1:$admin2;
replica_ports $only-$only;
upstream first { launch exec "$slow{first}"; idle_timeout 60s; }
upstream second { launch exec "$slow{second}"; idle_timeout 60s; }
server { listen 127.0.0.1:$port2; location / { proxy_pass first; } }
EOC
my $g2 = gw_start(conf => $text2, port => $port2, admin => $admin2);
$g2->{log} = "$dir/error-89b.log";
is(WG::http_post("$g2->{admin_url}/upstreams/first/wake", '')->{status}, 202, 'the first upstream is woken');
WG::http_post("$g2->{admin_url}/upstreams/second/wake", '');
my $st2 = sub { gw_status($g2)->{upstreams}{$_[0]} // {} };
ok(wait_until(sub { ($st2->('first')->{state} // '') eq 'READY' }, 30), 'the first upstream becomes READY')
	or diag(gw_log($g2));
is($st2->('first')->{url}, "http://127.0.0.1:$only", 'its worker listens on the one port replica_ports allows');
like(gw_log($g2), qr/upstream "second" replica 0: STOPPED -> FAILED \(no free local port/,
	'the second upstream, woken while the first worker booted, does not get the same port: it fails and says why');

spew("$dir/bad-ports.conf", "daemon off;\n\nreplica_ports 30000-20000;\n");
my $out = `${\ bin('wakegate')} -t -c $dir/bad-ports.conf 2>&1`;
isnt($? >> 8, 0, 'wakegate -t refuses a replica_ports range whose low end is above its high end');
like($out, qr/invalid port range "30000-20000" in "replica_ports" directive.* in \Q$dir\E\/bad-ports.conf:3/,
	'the error names the range, the directive, file and line');

done_testing();
