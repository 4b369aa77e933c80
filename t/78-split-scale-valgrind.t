#!/usr/bin/perl
# The split phase and scale_on's /metrics reader under valgrind (issue 16):
# a split over two real workers, each upstream reading gpu_util every
# 200ms; requests through both buckets, a reload that drops scale_on (its
# connections go) and changes the split, more requests, SIGTERM while the
# reader's connections of the other upstream are open. No leak, no invalid
# access.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use WG;
use WGGateway;
use WGFaults;
use Time::HiRes qw(sleep);

plan skip_all => 'valgrind is not installed' unless -x '/usr/bin/valgrind';
plan skip_all => 'wakegate is built with a sanitizer: it checks itself' if sanitized(bin('wakegate'));
$ENV{WG_VALGRIND} = 1;

my ($port, $admin) = (free_port(), free_port());
my $td = tmpdir();
my ($w1, $w2) = map { worker_cmd() =~ s/--name digits/--name $_/r } 'digits-v1', 'digits-v2';
sub conf_text {
	my ($v2_scale, $split) = @_;
	return <<"EOC";
daemon off;
pid $td/wakegate-$port.pid;
error_log $td/error-$port.log info;
access_log $td/access-$port.log;
admin_listen 127.0.0.1:$admin;
upstream digits-v1 { launch exec "$w1"; idle_timeout 60s; scale_on gpu_util > 90% for 10s every=200ms; }
upstream digits-v2 { launch exec "$w2"; idle_timeout 60s; $v2_scale }
server {
	listen 127.0.0.1:$port;
	location / {
		proxy_pass digits-v1;
		split "\$http_x_user_id" { $split }
	}
}
EOC
}
my $g = fault_gw_start(conf => conf_text('scale_on gpu_util > 90% every=200ms;', '50% digits-v1; * digits-v2;'),
	port => $port, admin => $admin);
my ($body) = digits_input(0);
my $h = HTTP::Tiny->new(timeout => 60);
my $ok = 0;
for my $k (1 .. 20) {
	$ok++ if $h->post("$g->{url}/predict", { content => $body,
		headers => { 'Content-Type' => 'application/json', 'X-User-Id' => "user-$k" } })->{status} == 200;
}
is($ok, 20, 'under valgrind, 20 requests through the split are answered');
my $m = '';
ok(wait_until(sub { $m = $h->get("$g->{admin_url}/metrics")->{content};
	$m =~ /^wakegate_scale_on_readings\{upstream="digits-v1"\} 1$/m && $m =~ /^wakegate_scale_on_readings\{upstream="digits-v2"\} 1$/m }, 30),
	'both upstreams read their replica\'s gauge');
is(gw_status($g)->{upstreams}{'digits-v1'}{scale}{scale_on}{readings}, 1, '/status shows the reading');
like(gw_log($g), qr/STOPPED -> BOOTING.*\n(?s:.*)STOPPED -> BOOTING/, 'both upstreams were woken');

spew($g->{conf}, conf_text('', '25% digits-v2;'));
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 30), 'a reload drops digits-v2\'s scale_on and changes the split');
ok(wait_until(sub { $h->get("$g->{admin_url}/metrics")->{content} =~ /^wakegate_scale_on_readings\{upstream="digits-v2"\} 0$/m }, 10),
	'digits-v2 reads its gauge no more');
$ok = 0;
for my $k (1 .. 10) {
	$ok++ if $h->post("$g->{url}/predict", { content => $body,
		headers => { 'Content-Type' => 'application/json', 'X-User-Id' => "user-$k" } })->{status} == 200;
}
is($ok, 10, 'requests after the reload are answered');
is(fault_gw_stop($g), 0, 'the gateway exits 0 on SIGTERM and valgrind finds no leak or invalid access');
done_testing();
