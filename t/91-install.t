# make install gives a setup that runs as installed (wakegate(8) FILES):
# the installed conf names the installed worker and models, -p and -c
# default to the compiled-in prefix and sysconfdir, and -t on a conf whose
# worker or model is not there says so instead of "successful".
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;

my $build = $ENV{WG_BUILD} // src('.');
plan skip_all => 'no Makefile in the build tree' unless -f "$build/Makefile";
my $dir = tmpdir();
# run from make check: the inner make must not take the outer one's flags or jobserver
delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};
my $S = "$dir/inst";

sub run_cmd { my $out = `@_ 2>&1`; return ($? >> 8, $out) }
sub make_var {
	my ($v) = @_;
	my ($line) = grep { /^\Q$v\E = / } split /\n/, slurp("$build/Makefile");
	return $line =~ s/^\Q$v\E = //r;
}

# prefix= on make's command line moves every directory under $S, so that the
# installed paths resolve there without root
my ($rc, $out) = run_cmd('make', '-s', '-C', $build, 'install', "prefix=$S");
is($rc, 0, "make install prefix=$S") or diag $out;
my $conf = "$S/etc/wakegate/wakegate.conf";
ok(-f $conf && -f "$conf.default", 'wakegate.conf and wakegate.conf.default under sysconfdir/wakegate');
ok(-x "$S/sbin/wakegate" && -x "$S/sbin/wakegate-worker", 'wakegate and wakegate-worker in sbindir');
ok(-f "$S/share/wakegate/models/digits.safetensors", 'models under datadir/wakegate/models');
my $text = slurp($conf);
like($text, qr{launch exec "\Q$S\E/sbin/wakegate-worker --model \Q$S\E/share/wakegate/models/digits\.safetensors },
	'the installed conf names the installed worker and model');
unlike($text, qr{"gpu-worker/|--model models/}, 'no source-tree path is left in it');

my $wg = "$S/sbin/wakegate";
($rc, $out) = run_cmd($wg, '-t', '-p', "$S/share/wakegate", '-c', $conf);
is($rc, 0, 'the installed wakegate -t passes on the installed conf') or diag $out;

# the conf copied byte for byte (what make install used to do) fails -t and says why
($rc, $out) = run_cmd($wg, '-t', '-p', "$S/share/wakegate", '-c', src('conf/wakegate.conf'));
is($rc, 1, '-t fails on a conf whose worker is not there');
like($out, qr{upstream "digits": launch program "gpu-worker/wakegate-worker" \Q$S\E/share/wakegate/gpu-worker/wakegate-worker \(No such file or directory\) in \S+wakegate\.conf:\d+},
	'-t names the upstream, the program as resolved, and file:line');
(my $nomodel = $text) =~ s{models/digits\.safetensors}{models/nothere.safetensors};
spew("$dir/nomodel.conf", $nomodel);
($rc, $out) = run_cmd($wg, '-t', '-p', "$S/share/wakegate", '-c', "$dir/nomodel.conf");
like($out, qr{upstream "digits": model "\S+/nothere\.safetensors" .*No such file}, '-t names a missing --model file') ;
($rc, $out) = run_cmd($wg, '-t', '-p', "$dir/no-such-prefix", '-c', $conf);
like($out, qr{prefix "\Q$dir\E/no-such-prefix": No such file or directory}, '-t says when the prefix launch commands run in is missing');

# the defaults are compiled in from configure's directories, as nginx's are
my $sysconf = make_var('sysconfdir') =~ s/\$\{prefix\}/make_var('prefix')/er;
($rc, $out) = run_cmd('cd / &&', $wg, '-h');
like($out, qr{-c filename\s+: set configuration file \(default: \Q$sysconf\E/wakegate/wakegate\.conf\)}, '-h names the compiled-in conf under sysconfdir');
($rc, $out) = run_cmd('cd / &&', "$wg -t -p $S/share/wakegate -c ../../etc/wakegate/wakegate.conf");
is($rc, 0, 'a relative -c resolves against the prefix, not the current directory') or diag $out;

# start the installed gateway on the installed conf (ports moved to free ones) and serve
my ($port, $admin) = (free_port(), free_port());
(my $run = $text) =~ s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/;
$run =~ s/admin_listen 127\.0\.0\.1:8081;/admin_listen 127.0.0.1:$admin;/;
$run =~ s/^redis .*$//m;	# no Redis: the gateway keeps state in memory
$run =~ s/access_log stdout;/access_log $dir\/access.log;/;
spew("$S/etc/wakegate/test.conf", $run);
my $pid = start_proc(name => 'wakegate-installed', cmd => [$wg, '-c', "$S/etc/wakegate/test.conf", '-p', "$S/share/wakegate"],
	log => "$dir/installed.log");
ok(wait_http("http://127.0.0.1:$admin/status", 30), 'the installed gateway starts') or diag slurp("$dir/installed.log");
my ($body, $label) = digits_input(0);
my $r = http_post("http://127.0.0.1:$port/predict", $body, timeout => 90);
is($r->{status}, 200, 'a request is served by the installed worker from the installed model') or diag $r->{content}, slurp("$dir/installed.log");
my @exe = grep { defined } map { readlink("/proc/$_/exe") } gw_children($pid);
ok((grep { $_ eq "$S/sbin/wakegate-worker" } @exe), 'the worker the gateway started is the installed one') or diag "@exe";
is(stop_proc($pid, 'TERM', 30) >> 8, 0, 'it stops cleanly');

# As installed for real: bind the installed tree over the real prefix in a
# private mount namespace, then run from / with no -c or -p at all.
SKIP: {
	my $prefix = make_var('prefix');
	skip 'unshare -m needs root', 2 unless $> == 0 && system('unshare -m true 2>/dev/null') == 0;
	skip "$prefix/sbin, etc and share must exist to bind the installed ones over them", 2
		unless 3 == grep { -d "$prefix/$_" } qw(sbin etc share);
	my $D = "$dir/destdir";
	($rc, $out) = run_cmd('make', '-s', '-C', $build, 'install', "DESTDIR=$D");
	is($rc, 0, 'make install DESTDIR=...') or diag $out;
	my @binds = map { "mount --bind $D$prefix/$_ $prefix/$_ &&" } grep { -d "$D$prefix/$_" && -d "$prefix/$_" } qw(sbin etc share);
	($rc, $out) = run_cmd('unshare', '-m', 'sh', '-c', "'@binds cd / && $prefix/sbin/wakegate -t'");
	like($out, qr{configuration file \Q$prefix\E/etc/wakegate/wakegate\.conf test is successful}, "cd /; wakegate -t finds $prefix/etc/wakegate/wakegate.conf and passes") or diag $out;
}

done_testing();
