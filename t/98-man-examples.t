# Every EXAMPLES block of every man page runs as written (issue 19): conf
# blocks pass -t (a fragment with the default conf's upstreams), "the default
# conf" in wakegate.conf(5) is conf/wakegate.conf, and each command runs, from
# a folder laid out as the source tree, and exits 0; a curl's expected answer
# lines are in its answer. The only change is the ports: each fixed port
# (8080, 8081, 9001, 8000, 6379) becomes a free one, everywhere at once.
# Examples that name a file the user brings (trace.csv, Azure's dataset)
# are skipped and counted.
use strict;
use warnings;
use Test::More;
use WG;
use Cwd qw(abs_path);
use File::Path qw(make_path);
use POSIX qw(WNOHANG);

my $sb = tmpdir() . '/tree';
make_path("$sb/conf");
my %port = map { $_ => free_port() } qw(8080 8081 9001 8000 6379);
$port{8000} = $port{9001};	# the warmer's "server that is not KServe": the worker's /predict
my $ports = sub { my ($t) = @_; $t =~ s/\b(8080|8081|9001|8000|6379)\b/$port{$1}/g; return $t };
symlink(abs_path(WG::bin('wakegate-worker') =~ s{/[^/]+$}{}r), "$sb/gpu-worker") or die;
symlink(src($_), "$sb/$_") or die for qw(models bench);
spew("$sb/conf/wakegate.conf", $ports->(slurp(src('conf/wakegate.conf'))));
# "a body of your own" for the warmer's last example
spew("$sb/warm.json", slurp(src('models/example.json')));
my $bindir = join ':', map { WG::bin($_) =~ s{/[^/]+$}{}r } qw(wakegate wakegate-worker wakegate-warmer);
my $replay = ($ENV{WG_BUILD} // src('.')) . '/tools/wakegate-replay';
$bindir .= ":" . ($replay =~ s{/[^/]+$}{}r) if -x $replay;
local $ENV{PATH} = "$bindir:$ENV{PATH}";
my $dump = ($ENV{WG_BUILD} // src('.')) . '/gateway/conf-dump';

# roff to text
sub plain {
	my ($l) = @_;
	$l =~ s/^\.B[IR]* //;
	$l =~ s/\\-/-/g;
	$l =~ s/\\\(dq/"/g;
	$l =~ s/\\&//g;
	$l =~ s/\\f[BIRP]//g;
	return $l;
}

# the EXAMPLES section's blocks (.nf/.fi or .EX/.EE), each an array of lines, with the text before it
sub blocks {
	my ($page) = @_;
	my (@out, $in, $cur, $said);
	my $sec = 0;
	for my $l (split /\n/, slurp($page)) {
		if ($l =~ /^\.SH\s+(.*)/) { $sec = $1 eq 'EXAMPLES'; next }
		next unless $sec;
		if ($l =~ /^\.(nf|EX)$/) { $in = 1; $cur = []; next }
		if ($l =~ /^\.(fi|EE)$/) { $in = 0; push @out, { lines => $cur, said => $said // '' }; $said = ''; next }
		if ($in) { push @$cur, plain($l) }
		elsif ($l !~ /^\./) { $said .= "$l " }
	}
	return @out;
}

my (@bg, @gw_bg, $skipped);
END { for (@bg) { kill 'TERM', $_; waitpid($_, 0) } }

sub sh_bg {
	my ($cmd, $name) = @_;
	my $pid = fork // die;
	if (!$pid) {
		chdir $sb or die;
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$sb/$name.out";
		open STDERR, '>&', \*STDOUT;
		exec '/bin/sh', '-c', "exec $cmd" or exit 127;
	}
	push @bg, $pid;
	return $pid;
}
sub sh_run {
	my ($cmd) = @_;
	my $out = `cd '$sb' && $cmd 2>&1`;
	return ($? >> 8, $out);
}

my $default_dump = sub {
	my ($file) = @_;
	my $o = `'$dump' -p '$sb' '$file' 2>&1`;
	return join "\n", grep { !/\.defined |^file / } split /\n/, $o;
};

my @pages = map { src("man/$_") } qw(wakegate.8 wakegate.conf.5 wakegate-worker.8 wakegate-warmer.1 wakegate-replay.1);
my $n = 0;
for my $page (@pages) {
	my $pname = $page =~ s{.*/}{}r;
	my @b = blocks($page);
	ok(@b, "$pname has EXAMPLES blocks (" . scalar(@b) . ")");
	for my $b (@b) {
		my @lines = map { $ports->($_) } @{ $b->{lines} };
		my $text = join("\n", @lines) . "\n";
		$n++;
		if ($text =~ /[;{]\s*$/m && $text !~ /^\s*(wakegate|curl)/m) {
			# a conf: whole, or a fragment that proxies to the default conf's upstreams
			my $f = "$sb/conf/example-$n.conf";
			my $conf = $text;
			if ($conf !~ /^\s*upstream /m) {
				my $ups = join '', slurp("$sb/conf/wakegate.conf") =~ /^(upstream .*?^\})/msg;
				$conf .= "\n$ups\n";
			}
			spew($f, $conf);
			my ($rc, $out) = sh_run("wakegate -p '$sb' -c '$f' -t");
			is($rc, 0, "$pname: the conf after \"" . substr($b->{said}, 0, 50) . "\" passes -t") or diag($out);
			if ($b->{said} =~ /default conf/) {
				is($default_dump->($f), $default_dump->("$sb/conf/wakegate.conf"),
					"$pname: \"the default conf\" is conf/wakegate.conf");
			}
			next;
		}
		my @expect;
		for (my $i = 0; $i < @lines; $i++) {
			my $l = $lines[$i];
			next if $l =~ /^\s*$/;
			my ($prog) = $l =~ /^(\S+)/;
			if ($prog !~ /^(wakegate|wakegate-worker|wakegate-warmer|wakegate-replay|curl)$/) {
				next;	# an answer line: checked with its curl
			}
			if ($l =~ /\btrace\.csv\b|invocations_per_function/) {
				$skipped++;
				note("$pname: skipped (a file the user brings): $l");
				next;
			}
			my @answer;
			push @answer, $lines[++$i] while $i + 1 < @lines && $lines[$i + 1] !~ /^(wakegate|curl)/ && $lines[$i + 1] ne '...';
			if ($l =~ /^wakegate(-worker)? / && $l !~ / -t\b| -s /) {
				# a daemon in the foreground: started, then it must answer
				my $pid = sh_bg($l, "bg-$n");
				push @gw_bg, $pid if $l =~ /^wakegate /;
				my $url = $l =~ /^wakegate-worker/ ? "http://127.0.0.1:$port{9001}/v2/health/ready"
					: "http://127.0.0.1:$port{8081}/status";
				ok(wait_http($url, 60), "$pname: \"$l\" runs") or diag(slurp("$sb/bg-$n.out"));
				if ($l =~ /^wakegate /) {
					# the small model is kept warm: wait for it as a user watching the log would
					wait_until(sub { WG::http_get("http://127.0.0.1:$port{8081}/status")->{content} =~ /"digits-small".*?"state":\s*"READY"/s }, 60);
				}
				next;
			}
			my ($rc, $out) = sh_run($l);
			is($rc, 0, "$pname: \"$l\" exits 0") or diag($out);
			for my $a (@answer) {
				like($out, qr/^\Q$a\E\r?$/mi, "$pname: its answer has \"$a\"");
			}
			if ($l =~ /-s reload/) {
				ok(wait_until(sub { join('', map { slurp($_) } glob("$sb/bg-*.out")) =~ /reloading/ }, 10),
					"$pname: the daemon reloaded");
			}
		}
	}
	# a page's gateway ends with it: the next page's examples use its ports;
	# the worker stays, for the warmer's "local worker"
	for my $g (@gw_bg) { kill 'TERM', $g; waitpid($g, 0); @bg = grep { $_ != $g } @bg }
	@gw_bg = ();
}
note("skipped $skipped example commands that need a file the user brings") if $skipped;
done_testing();
