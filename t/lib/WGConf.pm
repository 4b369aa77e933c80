# WGConf: helpers for the conf tests (t/30, t/31): run conf-dump on a conf
# file (optionally under valgrind) in a temporary folder and read back what
# it printed as key => [values].
package WGConf;
use strict;
use warnings;
use Exporter 'import';
use File::Path qw(make_path);
use Test::More ();
use WG;

our @EXPORT = qw(conf_setup run_dump conf val all);

my ($dump, $dir);

# Finds conf-dump (the whole test is skipped without it) and makes
# tmpdir()/NAME plus any SUBFOLDERS in it; returns (that folder, where
# run_dump and conf work, and conf-dump's path).
sub conf_setup {
	my ($name, @sub) = @_;
	$dump = ($ENV{WG_BUILD} // src('.')) . '/gateway/conf-dump';
	Test::More::plan(skip_all => "no $dump: build it first (make gateway/conf-dump)") unless -x $dump;
	$dir = tmpdir() . "/$name";
	make_path($dir, map { "$dir/$_" } @sub);
	return ($dir, $dump);
}

# Runs conf-dump on file (with -p prefix when given, under the wrap command
# when given) with cwd (default: the folder); returns
# { code, signal, out, err, kv => { key => [values] } }.
sub run_dump {
	my (%a) = @_;
	my @cmd = (@{ $a{wrap} // [] }, $dump, ($a{prefix} ? ('-p', $a{prefix}) : ()), $a{file});
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		chdir($a{cwd} // $dir) or die;
		open STDOUT, '>', "$dir/.out" or die;
		open STDERR, '>', "$dir/.err" or die;
		exec @cmd or exit 127;
	}
	waitpid($pid, 0);
	my $r = { code => $? >> 8, signal => $? & 127, out => scalar(slurp("$dir/.out")), err => scalar(slurp("$dir/.err")) };
	for (split /\n/, $r->{out}) {
		my ($k, $v) = /^(\S+) ?(.*)$/ or next;
		push @{ $r->{kv}{$k} }, $v;
	}
	chomp $r->{err};
	return $r;
}

# Writes text to the folder's NAME (default test.conf) and loads it with the
# folder as prefix (unless prefix is given); returns run_dump's answer.
sub conf {
	my ($text, %a) = @_;
	my $name = $a{name} // 'test.conf';
	spew("$dir/$name", $text);
	return run_dump(file => $name, prefix => $a{prefix} // $dir, %a);
}

# The first value of a key, or undef; all: every value (an array ref).
sub val { my ($r, $k) = @_; return $r->{kv}{$k} ? $r->{kv}{$k}[0] : undef }
sub all { my ($r, $k) = @_; return $r->{kv}{$k} // [] }

1;
