# The directive rows (gateway/conf_cmds.c, conf_tls.c) against the man page
# and against what a conf does: each directive's default in the man page is
# the row's; a default written out loads exactly as the directive left out;
# a block with more than 64 directive lines parses and still catches a
# duplicate; a reload that changes a restart-only line (redis, pid) keeps
# the running value, with real Redis, and logs that it waits for the start
# (WG_VALGRIND=1 runs that gateway under valgrind).
use strict;
use warnings;
use Test::More;
use WG;
use WGConf;
use WGGateway;
use WGFaults;
use Time::HiRes qw(time sleep);

my ($dir, $dump) = conf_setup('rows');

# --- the rows, as conf-dump -r prints them
my %row;
my @order;
for (split /\n/, `$dump -r`) {
	my ($name, $ctx, $flags, $dflt) = split /\t/;
	$row{$name} = { ctx => [ split /,/, $ctx ], flags => { map { $_ => 1 } split /,/, $flags },
		dflt => $dflt eq '-' ? undef : $dflt };
	push @order, $name;
}
cmp_ok(scalar(@order), '>', 40, 'conf-dump -r lists the directive rows (' . scalar(@order) . ')');

# --- the man page's entries: name, default text ("-": none given), restart-only
sub man_entries {
	my @l = split /\n/, slurp(src('man/wakegate.conf.5'));
	my ($in, %e) = (0);
	for (my $i = 0; $i < @l; $i++) {
		$in = 1 if $l[$i] =~ /^\.SH DIRECTIVES/;
		$in = 0 if $in && $l[$i] =~ /^\.SH EXAMPLES/;
		next unless $in && $l[$i] eq '.TP' && $l[$i + 1] =~ /^\.B (\w+)/;
		my ($name, $text) = ($1, '');
		for (my $j = $i + 1; $j < @l && $l[$j] ne '.br' && $l[$j] ne '.TP'; $j++) {
			my $t = $l[$j];
			$t =~ s/^\.BR (\S+) (\S+)$/$1$2/;	# bold then roman, no space between
			$t =~ s/^\.[A-Z]+ //;
			$text .= " $t";
		}
		next unless $text =~ /Context:/;	# a launch driver or a degrade condition, not a directive
		$text =~ s/\\f[BIRP]//g;
		$text =~ s/\\\(dq/"/g;
		$text =~ s/\\-/-/g;
		my $d = $text =~ /Default:\s*(.*?)\.\s+Context:/ ? $1 : '-';
		$d =~ s/\s+/ /g;
		$e{$name} = { dflt => $d, restart => $text =~ /Takes effect at the next start/ ? 1 : 0 };
	}
	return %e;
}
my %man = man_entries();

# defaults that are worked out rather than written: each is checked by what the conf does, below
my %worked_out = (
	replica_ports => qr/^below the kernel's ephemeral range$/,
	target_concurrency => qr/^max_conns$/,
	tls_ca => qr/^the system's CA store$/,
);
for my $n (@order) {
	my $r = $row{$n};
	ok($man{$n}, "$n has an entry in wakegate.conf(5)") or next;
	my $m = $man{$n}{dflt};
	if (defined $r->{dflt}) {
		ok($m eq $r->{dflt} || index($m, "$r->{dflt} (") == 0,
			"$n: the man page's default \"$m\" is the row's \"$r->{dflt}\"");
	} elsif ($worked_out{$n}) {
		like($m, $worked_out{$n}, "$n: the man page's default is worked out, as the row has none");
	} elsif ($r->{flags}{block} || $n eq 'include') {
		is($m, '-', "$n: a block (or include) has no default, nor has its entry");
	} else {
		like($m, qr/^none\b/, "$n: no default in the row, \"none\" in the man page");
	}
	is($man{$n}{restart}, $r->{flags}{restart} ? 1 : 0,
		"$n: the man page says \"takes effect at the next start\" exactly when the row is restart-only");
}
for my $n (sort keys %man) {
	ok($row{$n}, "the man page's $n is a row of the table");
}
ok($row{$_}{flags}{restart}, "$_ is restart-only") for qw(daemon pid redis);
ok(!$row{$_}{flags}{restart}, "$_ is applied by a reload") for qw(idle_timeout error_log admin_listen limit_req_status);
for my $n (grep { $row{$_}{flags}{restart} } @order) {
	is_deeply($row{$n}{ctx}, ['main'], "restart-only $n stands in main alone (a reload keeps main's line)");
}

# --- a default written out loads as the directive left out, in every context the row allows
my $UPS = 'upstream u { launch exec "w $port"; %s}';
my $SRV = 'server { listen 127.0.0.1:1; %s location / { proxy_pass u; %s} }';
sub text_with {
	my (%at) = @_;
	return ($at{main} // '') . "\n" . sprintf($UPS, $at{upstream} // '') . "\n"
		. sprintf($SRV, $at{server} // '', $at{location} // '') . "\n";
}
my $base = conf(text_with());
is($base->{code}, 0, 'a conf with no directive beyond launch, listen and proxy_pass loads') or diag $base->{err};
my $idle_default = $row{idle_timeout}{dflt};
for my $n (grep { defined $row{$_}{dflt} } @order) {
	# "keepalive fixed" alone is the row's way to say "at idle_timeout"; a file writes the time
	my $written = $n eq 'keepalive' ? "fixed $idle_default" : $row{$n}{dflt};
	for my $ctx (@{ $row{$n}{ctx} }) {
		my $r = conf(text_with($ctx => "$n $written; "));
		is($r->{code}, 0, "\"$n $written;\" in $ctx loads") or diag $r->{err};
		is($r->{out}, $base->{out}, "\"$n $written;\" in $ctx changes nothing: it is the default");
	}
}

# the worked-out defaults and the "none"s, by what the conf holds
is(val($base, 'upstream.u.target_concurrency'), val($base, 'upstream.u.max_conns'), 'target_concurrency is max_conns by default');
my $mc = conf(text_with(upstream => 'max_conns 3; '));
is(val($mc, 'upstream.u.target_concurrency'), 3, '... and follows a written max_conns');
is(val($base, 'replica_ports'), 'below-ephemeral', 'replica_ports: below the ephemeral range by default');
is(val($base, 'upstream.u.tls_ca'), '-', 'tls_ca: none written, the system store is used');
is(val($base, 'upstream.u.scale_p99_ms'), 0, 'scale_p99: none, latency does not scale');
is(val($base, 'redis'), 'off', 'redis: off, state in memory');
is(val($base, 'redis_prefix'), 'wakegate:', 'with the prefix redis= would default to');
ok(!grep({ /^(server\.0\.)?(location\.0\.)?limit_(req|conn) / } split /\n/, $base->{out}), 'limit_req, limit_conn: none');
is(val($base, 'upstream.u.keepalive'), 'fixed', 'keepalive: fixed ...');
is(val($base, 'upstream.u.idle_timeout_ms'), 300000, '... at idle_timeout, 5m');
is(val($base, 'server.0.ssl_protocols'), 'TLSv1.2 TLSv1.3', 'a server takes main\'s default ssl_protocols');
my $sp = conf(text_with(main => 'ssl_protocols TLSv1.3; ssl_ciphers HIGH; '));
is(val($sp, 'server.0.ssl_protocols'), 'TLSv1.3', 'and main\'s written ssl_protocols');
is(val($sp, 'server.0.ssl_ciphers'), 'HIGH', 'and main\'s written ssl_ciphers');

# a written value that the old fallbacks turned into the default is refused, loudly
for my $t ([ upstream => 'boot_timeout 0; ', '"boot_timeout" must be above 0' ],
	   [ upstream => 'idle_timeout 0; ', '"idle_timeout" must be above 0' ],
	   [ upstream => 'keepalive fixed 0; ', '"keepalive fixed" must be above 0' ],
	   [ upstream => 'hold 5 timeout=0; ', '"hold timeout=" must be above 0' ],
	   [ upstream => 'warmup timeout=0; ', '"warmup timeout=" must be above 0' ],
	   [ location => 'proxy_read_timeout 0; ', '"proxy_read_timeout" must be above 0' ],
	   [ main => 'proxy_connect_timeout 0; ', '"proxy_connect_timeout" must be above 0' ]) {
	my $r = conf(text_with($t->[0] => $t->[1]));
	like($r->{err}, qr/^\Q$t->[2]\E in test\.conf:\d+$/, "$t->[1]is refused: $t->[2]");
}
my $lt = conf(text_with(upstream => 'lock_ttl 0; '));
is(val($lt, 'upstream.u.lock_ttl_ms'), 0, 'lock_ttl 0 loads (the fleet counts less than 1s as 1s, as the man page says)');

# --- more than 64 directive lines in one block, every single-valued directive of the context among them
my @main_single = grep { grep({ $_ eq 'main' } @{ $row{$_}{ctx} }) && !$row{$_}{flags}{multi} && $_ ne 'replica_ports' } @order;
my $many = join('', map { "$_ $row{$_}{dflt};\n" } grep { defined $row{$_}{dflt} } @main_single)
	. "replica_ports 20000-20100;\n"
	. join('', map { "limit_req_zone \$binary_remote_addr zone=z$_:32k rate=${_}r/s;\n" } 1 .. 70);
my $nlines = () = $many =~ /;\n/g;
cmp_ok($nlines, '>', 64, "a main block of $nlines directive lines");
my $r = conf($many . text_with());
is($r->{code}, 0, 'parses') or diag $r->{err};
is(scalar(grep { /^limit_zone z\d+$/ } split /\n/, $r->{out}), 70, 'with all its 70 zones');
is(val($r, 'replica_ports'), '20000-20100', 'and the single-valued directive after them');
$r = conf($many . "daemon on;\n" . text_with());
like($r->{err}, qr/^"daemon" directive is duplicate in test\.conf:\d+$/, 'a duplicate after the 64th line is still caught');
my @ups_single = grep { grep({ $_ eq 'upstream' } @{ $row{$_}{ctx} }) && !$row{$_}{flags}{multi} && defined $row{$_}{dflt} } @order;
my $ublock = join('', map { my $w = $_ eq 'keepalive' ? "fixed $idle_default" : $row{$_}{dflt}; "$_ $w; " } @ups_single);
$r = conf(text_with(upstream => $ublock . 'target_concurrency 2; '));
is($r->{code}, 0, 'an upstream with every single-valued upstream directive (' . (@ups_single + 1) . ') parses') or diag $r->{err};
is(val($r, 'upstream.u.target_concurrency'), 2, 'and the last of them counts');

# --- a reload that changes restart-only lines: real gateway, real Redis. The
# gateway's store connects once, at start; the Redis limit_req zones follow
# the conf's redis line at each reload, so they show which one is in force.
SKIP: {
	skip 'no redis-server', 12 unless `which redis-server 2>/dev/null`;
	my ($r1, $r1pid) = start_redis();
	my ($r2, $r2pid) = start_redis();
	my ($body) = digits_input(3);
	my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 60s;',
		extra => "redis 127.0.0.1:$r1 prefix=wg32:;\n"
			. "limit_req_zone \$binary_remote_addr zone=rl:1m rate=100r/s redis; limit_req zone=rl burst=10;");
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);	# under valgrind with WG_VALGRIND=1
	my $keys = sub { my ($p, $pat) = @_; return scalar(grep { /\S/ } `redis-cli -p $p --scan --pattern '$pat'`) };
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a gateway started with redis and a Redis limit_req zone answers');
	ok(wait_until(sub { $keys->($r1, 'wg32:limit:rl:*') > 0 && $keys->($r1, 'wg32:activity') > 0 }, 10),
		'its activity and its limit buckets are in that Redis');

	(my $text2 = $text) =~ s/^redis 127\.0\.0\.1:$r1 /redis 127.0.0.1:$r2 /m or die;
	$text2 =~ s/idle_timeout 60s;/idle_timeout 50s;/ or die;
	$text2 =~ s{^pid (\S+)\.pid;}{pid $1-moved.pid;}m or die;
	spew($g->{conf}, $text2);
	system('redis-cli', '-p', $r1, 'FLUSHALL') == 0 or die;
	kill 'HUP', $g->{pid};
	ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 10), 'a reload naming another Redis and another pid file is done');
	my $log = gw_log($g);
	like($log, qr/\[warn\] \d+#0: reload: the "redis" line changed in \S+:6; it takes effect at the next start, this gateway stays on "redis 127\.0\.0\.1:$r1 prefix=wg32:" \(\S+:6\)/,
		'the log names the redis line that stays, and where it was');
	like($log, qr/\[warn\] \d+#0: reload: the "pid" line changed in \S+:2; it takes effect at the next start, this gateway stays on "pid \S+wakegate-$port\.pid"/,
		'and the pid line');
	is(gw_status($g)->{upstreams}{digits}{idle_timeout_seconds}, 50, 'the same reload applied idle_timeout 50s (not restart-only)');
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a request after the reload is answered');
	ok(wait_until(sub { $keys->($r1, 'wg32:limit:rl:*') > 0 }, 10), 'its limit bucket is in the Redis the gateway started with');
	is($keys->($r2, '*'), 0, 'and nothing went to the Redis the new line names');

	# removing the line is a change too; the running conf still holds the started line
	(my $text3 = $text2) =~ s/^redis .*\n//m or die;
	spew($g->{conf}, $text3);
	kill 'HUP', $g->{pid};
	ok(wait_until(sub { my @n = gw_log($g) =~ /reload done/g; @n >= 2 }, 10), 'a reload without a redis line is done');
	like(gw_log($g), qr/the "redis" line changed in \S+ \(removed\); it takes effect at the next start, this gateway stays on "redis 127\.0\.0\.1:$r1 prefix=wg32:"/,
		'and says the started redis line stays');
	is(fault_gw_stop($g), 0, 'the gateway exits 0 on SIGTERM (under WG_VALGRIND=1: no leak, no invalid access)');
	stop_proc($_) for $r1pid, $r2pid;
}

done_testing;
