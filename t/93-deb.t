# The Debian package (debian/, README "Install as a package"): it builds with
# dpkg-buildpackage from a copy of the tree, holds what it should, passes
# lintian without errors, and its installed wakegate passes -t on its
# installed conf. Skipped only where dpkg-buildpackage is absent
# (./quickstart.sh installs it).
use strict;
use warnings;
use Test::More;
use WG;
use Time::HiRes qw(time);
use File::Path qw(make_path);

my $have = sub { system("command -v $_[0] >/dev/null 2>&1") == 0 };
plan skip_all => 'no dpkg-buildpackage/dh (apt-get install dpkg-dev debhelper)'
	unless $have->('dpkg-buildpackage') && $have->('dh');
my $dir = tmpdir();
# run from make check: the inner make must not take the outer one's flags or jobserver
delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES)};
my $src = src('.');
sub run_cmd { my $out = `@_ 2>&1`; return ($? >> 8, $out) }

# a copy of the tree as git has it (with uncommitted files), not the build
# outputs: dpkg-buildpackage cleans and configures its own
my $copy = "$dir/deb/wakegate";
mkdir "$dir/deb";
mkdir $copy;
my ($rc, $out);
if (-e "$src/.git") {
	($rc, $out) = run_cmd("cd $src && git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C $copy");
} else {
	($rc, $out) = run_cmd("cp -a $src/. $copy/");
}
is($rc, 0, 'a copy of the source tree') or diag $out;

my $t0 = time;
my $jobs = `nproc` =~ s/\s+//r || 1;
($rc, $out) = run_cmd("cd $copy && DEB_BUILD_OPTIONS='parallel=$jobs' dpkg-buildpackage -us -uc -b");
is($rc, 0, 'dpkg-buildpackage -us -uc -b builds it') or diag substr($out, -4000);
my ($deb) = glob("$dir/deb/wakegate_*_*.deb");
ok($deb && -f $deb, 'a wakegate_VERSION_ARCH.deb') or BAIL_OUT('no package');
diag sprintf('package built in %.0f s', time - $t0);

# contents
my %files = map { (split ' ', $_)[5] =~ s{^\./}{/}r => 1 } split /\n/, `dpkg-deb -c $deb`;
for my $f (qw(/usr/sbin/wakegate /usr/sbin/wakegate-worker /usr/bin/wakegate-warmer /usr/bin/wakegate-replay
	/etc/wakegate/wakegate.conf /lib/systemd/system/wakegate.service /etc/logrotate.d/wakegate
	/usr/share/wakegate/models/digits.safetensors /usr/share/wakegate/models/digits-small.safetensors
	/usr/share/man/man8/wakegate.8.gz /usr/share/man/man5/wakegate.conf.5.gz /usr/share/man/man8/wakegate-worker.8.gz
	/usr/share/man/man1/wakegate-warmer.1.gz /usr/share/man/man1/wakegate-replay.1.gz /usr/share/doc/wakegate/copyright)) {
	ok($files{$f}, "the package holds $f");
}
ok(!$files{'/etc/wakegate/wakegate.conf.default'}, 'no wakegate.conf.default beside the conffile');
my $ctl = "$dir/deb/control";
run_cmd("dpkg-deb -e $deb $ctl");
like(slurp("$ctl/conffiles"), qr{^/etc/wakegate/wakegate\.conf$}m, '/etc/wakegate/wakegate.conf is a conffile');
like(slurp("$ctl/postinst"), qr{adduser --system --group .* wakegate}s, 'postinst makes the wakegate system user');
like(slurp("$ctl/postinst"), qr{deb-systemd-helper.*wakegate\.service}s, 'and enables the unit');
like(`dpkg-deb -f $deb Depends`, qr{\badduser\b}, 'Depends: adduser');

# lintian: no errors (warnings are listed)
SKIP: {
	skip 'no lintian', 1 unless $have->('lintian');
	my ($changes) = glob("$dir/deb/wakegate_*.changes");
	my $l = `lintian $changes 2>&1`;
	my @errors = grep { /^E: / } split /\n/, $l;
	is(scalar @errors, 0, 'lintian: no errors') or diag $l;
	diag "lintian: $_" for grep { /^[WI]: / } split /\n/, $l;
}

# unpacked into a scratch root
my $root = "$dir/deb/root";
($rc, $out) = run_cmd("dpkg -x $deb $root");
is($rc, 0, 'dpkg -x into a scratch root');
my $conf = slurp("$root/etc/wakegate/wakegate.conf");
like($conf, qr{launch exec "/usr/sbin/wakegate-worker --model /usr/share/wakegate/models/digits\.safetensors }, 'the conf names the installed worker and model');
like($conf, qr{^error_log /var/log/wakegate/error\.log notice;$}m, 'it logs to /var/log/wakegate, where logrotate looks');
like($conf, qr{^access_log /var/log/wakegate/access\.log;$}m, 'the access log too');
my $wg = "$root/usr/sbin/wakegate";
like(`$wg -h 2>&1`, qr{default: /etc/wakegate/wakegate\.conf\)}, 'the packaged wakegate reads /etc/wakegate/wakegate.conf by default');
like(`$wg -h 2>&1`, qr{default: /usr/share/wakegate\)}, 'with /usr/share/wakegate as its prefix');
my $lr = slurp("$root/etc/logrotate.d/wakegate");
like($lr, qr{^/var/log/wakegate/\*\.log \{}m, 'logrotate rotates /var/log/wakegate/*.log');
like($lr, qr{--signal=USR1 wakegate\.service}, 'and sends SIGUSR1, the gateway\'s reopen signal');
like(slurp(src('gateway/main.c')), qr/\{ "reopen", SIGUSR1 \}/, '(which is what wakegate -s reopen sends)');

my $unit = slurp("$root/lib/systemd/system/wakegate.service");
like($unit, qr{^Type=notify$}m, 'the unit is Type=notify');
like($unit, qr{^ExecReload=/bin/kill -HUP \$MAINPID$}m, 'reload is SIGHUP');
like($unit, qr{^Restart=on-failure$}m, 'restart on failure');
like($unit, qr{^User=wakegate$}m, 'runs as wakegate');
unlike($unit, qr{^(PrivateDevices|MemoryDenyWriteExecute)=(yes|true)}m, 'no hardening that breaks GPU workers');

# As installed: the scratch root's /usr/sbin, /usr/share and /var/log bound
# over the real ones in a private mount namespace, so the absolute paths in
# the conf and the unit resolve to the package's files.
SKIP: {
	skip 'unshare -m needs root', 3 unless $> == 0 && system('unshare -m true 2>/dev/null') == 0;
	make_path("$root/var/log/wakegate");
	my $ns = "for d in usr/sbin usr/share var/log; do mount --bind $root/\$d /\$d || exit 9; done; cd /";
	($rc, $out) = run_cmd("unshare -m sh -c '$ns; /usr/sbin/wakegate -t -c $root/etc/wakegate/wakegate.conf'");
	is($rc, 0, 'the installed wakegate -t passes on the installed conf') or diag $out;
	like($out, qr{test is successful}, 'and says so');
	skip 'no systemd-analyze', 1 unless $have->('systemd-analyze');
	($rc, $out) = run_cmd("unshare -m sh -c '$ns; systemd-analyze verify $root/lib/systemd/system/wakegate.service'");
	is($rc, 0, 'systemd-analyze verify accepts the unit') or diag $out;
}
SKIP: {
	skip 'no systemd-analyze', 1 unless $have->('systemd-analyze');
	my $sec = `systemd-analyze security --offline=true $root/lib/systemd/system/wakegate.service 2>&1`;
	my ($level) = $sec =~ /Overall exposure level for wakegate\.service: ([\d.]+)/;
	ok(defined $level && $level <= 4.5, 'systemd-analyze security: exposure ' . ($level // '?') . ' (at most 4.5, "OK")') or diag $sec;
}
# Without a namespace the same -t shows the conf is read as installed: the
# worker it names is the package's path, missing outside the package.
unless (-x '/usr/sbin/wakegate-worker') {
	($rc, $out) = run_cmd($wg, '-t', '-p', "$root/usr/share/wakegate", '-c', "$root/etc/wakegate/wakegate.conf");
	like($out, qr{launch program "/usr/sbin/wakegate-worker" /usr/sbin/wakegate-worker \(No such file or directory\)},
		'outside the root, -t says the installed worker path is missing');
}

done_testing();
