# wakegate's command line: -t, -T, -h, -v, -s, as nginx users expect.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;

my $wg = bin('wakegate');
my $dir = tmpdir();

sub run_cmd {
	my @cmd = @_;
	my $out = `@cmd 2>&1`;
	return ($? >> 8, $out);
}

my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 30s;');
spew("$dir/good.conf", $text);
my ($rc, $out) = run_cmd($wg, '-t', '-p', $dir, '-c', "$dir/good.conf");
is($rc, 0, 'wakegate -t on a good conf exits 0');
like($out, qr/the configuration file \Q$dir\E\/good.conf syntax is ok/, '-t says the syntax is ok');
like($out, qr/configuration file \Q$dir\E\/good.conf test is successful/, '-t says the test is successful');

($rc, $out) = run_cmd($wg, '-T', '-p', $dir, '-c', "$dir/good.conf");
is($rc, 0, 'wakegate -T exits 0');
like($out, qr/# configuration file .*good.conf:\n.*upstream digits/s, '-T dumps the conf');

# -T dumps every file include read too, after the main one, as nginx -T does
mkdir "$dir/conf.d";
spew("$dir/conf.d/extra.conf", "# the extra upstream\n");
(my $with_inc = $text) =~ s/^(daemon off;)$/$1\ninclude conf.d\/*.conf;/m or die 'no "daemon off;" line to include after';
spew("$dir/inc.conf", $with_inc);
($rc, $out) = run_cmd($wg, '-T', '-p', $dir, '-c', "$dir/inc.conf");
is($rc, 0, 'wakegate -T on a conf with include exits 0');
like($out, qr/# configuration file .*inc.conf:\n.*# configuration file \Q$dir\E\/conf.d\/extra.conf:\n# the extra upstream/s,
	'-T dumps the included file after the main one, under its own heading');

spew("$dir/bad.conf", "daemon off;\n\nfrobnicate on;\n");
($rc, $out) = run_cmd($wg, '-t', '-c', "$dir/bad.conf");
is($rc, 1, 'wakegate -t on a bad conf exits 1');
like($out, qr/^wakegate: .*"frobnicate".* in \Q$dir\E\/bad.conf:3$/m, 'the error names the directive, file and line');
like($out, qr/test failed/, '-t says the test failed');

spew("$dir/conf-rel.conf", $text);
($rc, $out) = run_cmd($wg, '-t', '-p', $dir, '-c', 'conf-rel.conf');
is($rc, 0, 'a relative -c resolves against -p');

($rc, $out) = run_cmd($wg, '-h');
is($rc, 0, 'wakegate -h exits 0');
like($out, qr/-s signal/, '-h lists the flags');
($rc, $out) = run_cmd($wg, "'-?'");
is($rc, 0, 'wakegate -? exits 0 too');
($rc, $out) = run_cmd($wg, '-v');
like($out, qr/wakegate\/\d+\.\d+/, '-v prints the version');
($rc, $out) = run_cmd($wg, '-x');
isnt($rc, 0, 'an unknown flag is an error');

# -s stop reaches the daemon through the pid file
my $g = gw_start(conf => $text, port => $port, admin => $admin);
ok(wait_until(sub { -s $g->{pidfile} }, 10), 'the daemon writes its pid file');
is(0 + slurp($g->{pidfile}), $g->{pid}, 'the pid file holds the daemon pid');
($rc, $out) = run_cmd($wg, '-s', 'reload', '-c', $g->{conf});
is($rc, 0, 'wakegate -s reload exits 0');
ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 10), 'the daemon reloads on -s reload');
rename($g->{log}, "$g->{log}.1") or die;
($rc, $out) = run_cmd($wg, '-s', 'reopen', '-c', $g->{conf});
is($rc, 0, 'wakegate -s reopen exits 0');
ok(wait_until(sub { -e $g->{log} }, 10), '-s reopen makes the daemon reopen its error log');
like(slurp("$g->{log}.1"), qr/reopening logs/, 'the old log says the logs were reopened');
($rc, $out) = run_cmd($wg, '-s', 'stop', '-c', $g->{conf});
is($rc, 0, 'wakegate -s stop exits 0');
my $st = stop_proc($g->{pid}, 0, 30);
is($st, 0, 'the daemon exits 0 after -s stop');
ok(!-e $g->{pidfile}, 'the pid file is removed at exit');
($rc, $out) = run_cmd($wg, '-s', 'stop', '-c', $g->{conf});
is($rc, 1, '-s stop with no daemon running is an error');
like($out, qr/\Q$g->{pidfile}\E/, 'and names the pid file');

done_testing;
