# Regex locations, nginx's way (wakegate.conf(5), location): an exact
# location wins; else the longest prefix is noted and wins at once when
# written ^~; else the regexes (~ case-sensitive, ~* caseless) are tried in
# conf order and the first match wins; else the longest prefix. They match
# the normalised path. A bad regex is an error naming file:line with
# PCRE2's message and offset; on SIGHUP the old conf keeps serving.
use strict;
use warnings;
use Test::More;
use WG;
use WGConf;
use WGGateway;
use WGRaw;

my ($cdir) = conf_setup('regex');
my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;');
sub loc { my ($m, $p, $name) = @_; return "\tlocation $m$p { proxy_pass digits; proxy_set_header X-Loc $name; }\n" }
my $locs = loc('', '/', 'root') . loc('= ', '/exact.png', 'exact') . loc('^~ ', '/static/', 'static')
	. loc('', '/img/', 'img') . loc('~ ', '\.png$', 'png') . loc('~* ', '\.jpg$', 'jpg')
	. loc('~ ', '^/img/.*\.png$', 'imgpng') . loc('~ ', '"^/v2/models/[^/]+/infer$"', 'infer');
$text =~ s{\tlocation / \{ proxy_pass digits; \}\n}{$locs} or die 'no location line in the conf';
my $g = gw_start(conf => $text, port => $port, admin => $admin);

# The location a request took: the X-Loc header the backend got.
sub took {
	my ($path) = @_;
	my $n0 = () = backend_log($blog);
	my ($r) = raw_exchange($port, "GET $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", quiet => 60);
	return 'status ' . (statuses($r) // '?') unless statuses($r) eq '200';
	my @l = backend_log($blog);
	my ($loc) = ($l[$n0] // '') =~ /X-Loc:(\w+)/;
	return $loc // 'none';
}

my @cases = (
	[ '/exact.png',            'exact',  'an exact location wins over a regex that matches too' ],
	[ '/static/a.png',         'static', 'a ^~ prefix that is the longest stops the regex search' ],
	[ '/img/a.png',            'png',    'a matching regex wins over the longest prefix (/img/)' ],
	[ '/img/a.txt',            'img',    'no regex matches: the longest prefix' ],
	[ '/a/b.JPG',              'jpg',    '~* is caseless' ],
	[ '/a/b.PNG',              'root',   '~ is case-sensitive (no match: the prefix /)' ],
	[ '/x/../img/c%2epng',     'png',    'regexes see the normalised path (/img/c.png)' ],
	[ '/v2/models/m1/infer',   'infer',  'an anchored regex with a class' ],
	[ '/v2/models/m1/infer/x', 'root',   '... and not past its $' ],
	[ '/exact.png.png',        'png',    'an exact location needs the whole path' ],
);
for my $c (@cases) {
	is(took($c->[0]), $c->[1], "$c->[0]: $c->[2]");
}
is(took('/img/z.png'), 'png', 'the first regex in conf order wins (^/img/.*\.png$ comes later)');

# conf errors: file:line, PCRE2's message and offset
my $UPS = qq{upstream u { launch exec "w \$port"; }\n};
my $r = conf($UPS . qq{server {\n\tlisten 127.0.0.1:18080;\n\tlocation ~ "^/(a" { proxy_pass u; }\n}\n});
isnt($r->{code}, 0, 'a regex that does not compile is a conf error');
like($r->{err}, qr{invalid regex "\^/\(a" in "location": missing closing parenthesis at offset 4 in test\.conf:4},
	'... naming the pattern, PCRE2\'s message and offset, file and line');
$r = conf($UPS . qq{server {\n\tlisten 127.0.0.1:18080;\n\tlocation ~ /a { proxy_pass http://u/b/; }\n}\n});
like($r->{err}, qr{"proxy_pass" cannot have URI part in location given by regular expression in test\.conf:4},
	'a URI part in proxy_pass has no prefix to replace in a regex location (nginx refuses it too)');
$r = conf($UPS . qq{server {\n\tlisten 127.0.0.1:18080;\n\tlocation ~* x { proxy_pass u; }\n\tlocation ~* x { proxy_pass u; }\n}\n});
like($r->{err}, qr{duplicate location "x" in test\.conf:5}, 'the same regex twice is a duplicate');
$r = conf($UPS . qq{server {\n\tlisten 127.0.0.1:18080;\n\tlocation ~ x { proxy_pass u; }\n\tlocation ~* x { proxy_pass u; }\n\tlocation x { proxy_pass u; }\n}\n});
like($r->{err}, qr{a path starts with "/" in test\.conf:6}, '~ x and ~* x are two locations; a prefix still starts with /');
$r = conf($UPS . qq{server {\n\tlisten 127.0.0.1:18080;\n\tlocation ~ x { proxy_pass u; }\n\tlocation ^~ /s/ { proxy_pass u; }\n}\n});
is($r->{code}, 0, 'a conf with ~ and ^~ loads') or diag($r->{err});
is(val($r, 'server.0.location.0'), '~ x', 'conf-dump shows the modifier');

# a bad regex on SIGHUP: the old conf keeps serving
(my $bad = $text) =~ s{location ~\* \\\.jpg\$}{location ~* "\\.jpg(\$"} or die 'no jpg location';
spew($g->{conf}, $bad);
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload failed.*invalid regex.*missing closing parenthesis/ }, 10),
	'a bad regex on SIGHUP is logged') or diag(gw_log($g));
is(took('/a/b.jpg'), 'jpg', 'and the old conf keeps serving its regexes');

done_testing();
