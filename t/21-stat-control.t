# The stat page (`rtmp_stat`: the C module's XML, read by its own stat.xsl; nginx-http-flv-module's
# JSON; Prometheus text) and the control API (`rtmp_control`: drop and redirect publishers,
# subscribers and clients), with one worker and with two, FFmpeg, our client and HTTP-FLV players.
# Every answer must cover all workers: with `reuseport` each connection, RTMP or HTTP, lands on
# either worker, and the tests check that both took some.
use lib 't/lib';
use Test::Nginx::Rtmp;
use HTTP::Tiny;

# xmllint and xsltproc come from Debian's libxml2-utils and xsltproc (scripts/setup).
-x '/usr/bin/xmllint' && -x '/usr/bin/xsltproc' or die "xmllint or xsltproc missing: run scripts/setup\n";

# GET http://127.0.0.1:<block's http port>$path on a new connection (so that with reuseport every
# request may land on another worker); returns HTTP::Tiny's answer (status 599: no answer).
sub http_get {
    my ($path) = @_;
    return HTTP::Tiny->new(timeout => 5, keep_alive => 0)->get("http://127.0.0.1:$ENV{TEST_NGINX_HTTP_PORT}$path");
}

# A control request's status, and for a 200 its body: "200 3", "500" (error pages are nginx's).
sub control {
    my $r = http_get(shift);
    return $r->{status} == 200 ? "200 $r->{content}" =~ s/\s+$//r : $r->{status};
}

my $SEQ = 0;

# The stat page at $path (default /stat) saved to a file; returns (file, body, answer).
sub stat_page {
    my $path = shift // '/stat';
    my $r = http_get($path);
    my $file = "$ENV{TEST_NGINX_PREFIX}/tmp/stat-" . (++$SEQ) . '.xml';
    open my $fh, '>', $file or die "$file: $!";
    binmode $fh;
    print $fh $r->{content};
    close $fh;
    return ($file, $r->{content}, $r);
}

sub cmd { Test::Nginx::Rtmp::run_cmd([@_], timeout => 30) }

# An XPath expression evaluated by xmllint on $file; its text output, trimmed.
sub xpath {
    my ($file, $expr) = @_;
    my ($code, $out) = cmd('xmllint', '--xpath', $expr, $file);
    return $out =~ s/^\s+|\s+$//gr;
}

# The same, relative to application `live`'s stream $name: sx($file, 'cam', 'meta/video/width').
sub sx {
    my ($file, $name, $rel) = @_;
    my $s = qq{/rtmp/server/application[name="live"]/live/stream[name="$name"]};
    return xpath($file, $rel =~ /^(count|string)\((.*)\)$/ ? "$1($s/$2)" : "string($s/$rel)");
}

# Players in the background (pids); each ends when the server closes its connection.
sub ffmpeg_player {
    my $url = shift;
    return Test::Nginx::Rtmp::spawn_publisher("ffmpeg player $url", 150, 'ffmpeg', '-hide_banner', '-nostdin',
        '-loglevel', 'error', '-i', $url, '-c', 'copy', '-f', 'null', '-');
}

sub cli_player {
    my $url = shift;
    return Test::Nginx::Rtmp::spawn_publisher("rtmp player $url", 150, rtmp_cli(), 'play', $url,
        '--idle-timeout', '60');
}

sub flv_player {
    my $url = shift;
    return Test::Nginx::Rtmp::spawn_publisher("flv player $url", 150, rtmp_cli(), 'flv-play', $url,
        '--duration', '120');
}

# Waits until every pid in @_ has exited, $secs seconds at most; returns how many still run.
sub wait_exit {
    my ($secs, @pids) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    my @left = @pids;
    while (@left && Time::HiRes::time() < $deadline) {
        @left = grep { $Test::Nginx::Rtmp::BG{$_} && !defined wait_publisher($_, 0) } @left;
        Time::HiRes::sleep(0.05) if @left;
    }
    return scalar @left;
}

# The worker pids of the error log lines matching $re (in scalar context: how many).
sub log_pids {
    my $re = shift;
    my %p = map { /\] (\d+)#/ ? ($1 => 1) : () } log_lines($re);
    my @p = sort keys %p;
    return wantarray ? @p : scalar @p;
}

# Prometheus text exposition: checks every line's syntax, TYPE before samples, families grouped;
# returns (\%samples 'name{labels}' => value, \%type family => kind, \@errors).
sub parse_prometheus {
    my $text = shift;
    my (%s, %type, @err, %done);
    my $cur = '';
    my $label = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/;
    my $value = qr/[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+|NaN|Inf)/;
    for my $line (split /\n/, $text) {
        if ($line =~ /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/) {
            push @err, "second TYPE for $1" if $type{$1};
            $type{$1} = $2;
            next;
        }
        if ($line =~ /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* / || $line =~ /^#(?! TYPE| HELP)/) {
            next;
        }
        unless ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:$label(?:,$label)*,?)?\})? ($value)(?: -?\d+)?$/) {
            push @err, "bad line: $line";
            next;
        }
        my ($name, $labels, $v) = ($1, $2 // '', $3);
        my $family = $type{$name} ? $name : ($name =~ /^(.*)_(?:bucket|sum|count)$/ && $type{$1} ? $1 : undef);
        unless ($family) {
            push @err, "sample before its TYPE: $line";
            next;
        }
        if ($family ne $cur) {
            push @err, "family $family not grouped" if $done{$family};
            $done{$cur} = 1 if $cur;
            $cur = $family;
        }
        push @err, "duplicate sample $name$labels" if exists $s{"$name$labels"};
        $s{"$name$labels"} = $v;
    }
    return (\%s, \%type, \@err);
}

# The C module's stat.xsl, from Debian's source package of nginx-rtmp-module (libnginx-mod-rtmp),
# fetched once into target/stat-xsl/ with apt-get and a private source list made from this
# machine's own Debian archive entry; never part of the repository. Returns (path) or
# (undef, why not).
sub c_stat_xsl {
    my $dir = repo_root() . '/target/stat-xsl';
    my $xsl = "$dir/stat.xsl";
    return $xsl if -s $xsl;
    my $os = Test::Nginx::Rtmp::slurp('/etc/os-release');
    my ($codename) = $os =~ /^VERSION_CODENAME="?(\w+)/m;
    return (undef, 'not a Debian system with a codename in /etc/os-release') unless $codename && $os =~ /^ID="?debian/m;
    # The archive this machine installs from (deb822 .sources or one-line sources.list).
    my $uri;
    for my $f (glob('/etc/apt/sources.list.d/*.sources')) {
        for my $stanza (split /\n\s*\n/, Test::Nginx::Rtmp::slurp($f)) {
            next unless $stanza =~ /^Suites:.*\b\Q$codename\E\b/mi;
            ($uri) = $stanza =~ m{^URIs:\s*(\S+/debian)/?\s*$}mi;
            last if $uri;
        }
        last if $uri;
    }
    ($uri) = Test::Nginx::Rtmp::slurp('/etc/apt/sources.list') =~ m{^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)/?\s+\Q$codename\E\s}m
        unless $uri;
    return (undef, 'no Debian archive in /etc/apt sources') unless $uri;
    File::Path::make_path("$dir/lists/partial", "$dir/cache/archives/partial", "$dir/src");
    open my $fh, '>', "$dir/sources.list" or return (undef, "$dir/sources.list: $!");
    print $fh "deb-src $uri $codename main\n";
    close $fh;
    my @apt = ('apt-get', '-q', '-o', "Dir::Etc::SourceList=$dir/sources.list", '-o', 'Dir::Etc::SourceParts=/dev/null',
               '-o', "Dir::State::Lists=$dir/lists", '-o', "Dir::Cache=$dir/cache", '-o', 'APT::Sandbox::User=root');
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd([@apt, 'update'], timeout => 120);
    return (undef, "apt-get update of $uri $codename sources failed: " . apt_errors("$out$err")) if $code;
    # Only the upstream tarball is needed (it holds stat.xsl); apt checks it against the signed index.
    ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(
        ['sh', '-c', 'cd "$1" && shift && exec "$@"', 'sh', "$dir/src", @apt, 'source', '--download-only',
         'libnginx-mod-rtmp'], timeout => 180);
    my ($orig) = glob("$dir/src/libnginx-mod-rtmp_*.orig.tar.*");
    return (undef, "apt-get source libnginx-mod-rtmp failed: " . apt_errors("$out$err")) unless $orig;
    ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['tar', '-xOf', $orig, '--wildcards', '*/stat.xsl'], timeout => 30);
    return (undef, "no stat.xsl in $orig: $err") unless $code == 0 && $out =~ /<xsl:stylesheet/;
    open $fh, '>', "$xsl.tmp" or return (undef, "$xsl: $!");
    print $fh $out;
    close $fh;
    rename "$xsl.tmp", $xsl or return (undef, "rename $xsl: $!");
    return $xsl;
}

# apt-get's error lines, on one line (for a skip reason).
sub apt_errors {
    my @e = grep { /^(?:E|W|Err):/ } split /\n/, shift;
    return substr(join('; ', @e) || 'no error line', 0, 300);
}

run_tests();

__DATA__

=== TEST 1: stat XML: the C module's tree and values for a publisher, two RTMP players and an HTTP-FLV player; the stylesheet PI; the C module's stat.xsl renders it; masks
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /stat { rtmp_stat all; rtmp_stat_stylesheet stat.xsl; }
    location /stat-plain { rtmp_stat all; }
    location /stat-live { rtmp_stat live; }
    location /stat-global { rtmp_stat global; }
    location /flv { flv_live on; }
}
--- timeout: 240
--- run
my $rtmp = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $pub = publish("$rtmp/cam", loop => 1, timeout => 150);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my @players = (main::ffmpeg_player("$rtmp/cam"), main::cli_player("$rtmp/cam"));
ok(wait_playing('cam', 2), 'two RTMP players play');

# The snapshot follows sessions within ~100 ms and meta once it arrived: wait for both.
my ($f, $xml, $r);
ok(wait_until(sub {
    ($f, $xml, $r) = main::stat_page();
    main::sx($f, 'cam', 'nclients') eq '3' && main::sx($f, 'cam', 'meta/video/width') ne '';
}, 10, 0.2), 'stat lists the stream with 3 clients and its meta') or diag($xml);
is($r->{status}, 200, 'stat: 200');
like($r->{headers}{'content-type'} // '', qr{^text/xml}, 'stat: Content-Type text/xml');
my ($code, $out, $err) = main::cmd('xmllint', '--noout', $f);
is($code, 0, 'stat XML is well-formed (xmllint --noout)') or diag($err);
like($xml, qr{\A<\?xml version="1\.0" encoding="utf-8" \?>\r?\n<\?xml-stylesheet type="text/xsl" href="stat\.xsl" \?>\r?\n<rtmp>},
     'XML declaration, then the rtmp_stat_stylesheet PI, then <rtmp>');
is(main::xpath($f, 'name(/*)'), 'rtmp', 'root element <rtmp>');
for my $el (qw(nginx_version nginx_rtmp_version built pid uptime naccepted bw_in bytes_in bw_out bytes_out)) {
    like(main::xpath($f, "string(/rtmp/$el)"), $el =~ /version|built/ ? qr/\S/ : qr/^\d+$/, "/rtmp/$el");
}
like(main::xpath($f, 'string(/rtmp/nginx_version)'), qr/^1\.\d+\.\d+$/, 'nginx_version is x.y.z');
cmp_ok(main::xpath($f, 'string(/rtmp/naccepted)'), '>=', 3, 'naccepted counts the 3 RTMP connections');
cmp_ok(main::xpath($f, 'string(/rtmp/bytes_in)'), '>', 0, 'server bytes_in > 0');
cmp_ok(main::xpath($f, 'string(/rtmp/bytes_out)'), '>', 0, 'server bytes_out > 0');
is(main::xpath($f, 'count(/rtmp/server/application[name="live"]/live/stream)'), 1, 'one stream in live');
is(main::sx($f, 'cam', 'name'), 'cam', 'stream name');
for my $el (qw(time bw_in bytes_in bw_out bytes_out bw_audio bw_video)) {
    like(main::sx($f, 'cam', $el), qr/^\d+$/, "stream $el is a number");
}
cmp_ok(main::sx($f, 'cam', 'bytes_in'), '>', 0, 'stream bytes_in > 0');
cmp_ok(main::sx($f, 'cam', 'bytes_out'), '>', 0, 'stream bytes_out > 0');
is(main::sx($f, 'cam', 'meta/video/width'), 640, 'meta/video/width');
is(main::sx($f, 'cam', 'meta/video/height'), 360, 'meta/video/height');
is(main::sx($f, 'cam', 'meta/video/frame_rate'), 25, 'meta/video/frame_rate');
is(main::sx($f, 'cam', 'meta/video/codec'), 'H264', 'meta/video/codec');
like(main::sx($f, 'cam', 'meta/video/profile'), qr/^(?:Baseline|Main|High)$/, 'meta/video/profile');
like(main::sx($f, 'cam', 'meta/video/level'), qr/^\d\.\d$/, 'meta/video/level');
is(main::sx($f, 'cam', 'meta/audio/codec'), 'AAC', 'meta/audio/codec');
is(main::sx($f, 'cam', 'meta/audio/profile'), 'LC', 'meta/audio/profile');
like(main::sx($f, 'cam', 'meta/audio/channels'), qr/^[12]$/, 'meta/audio/channels');
like(main::sx($f, 'cam', 'meta/audio/sample_rate'), qr/^(?:44100|48000)$/, 'meta/audio/sample_rate');
is(main::sx($f, 'cam', 'count(publishing)'), 1, 'stream <publishing/>');
is(main::sx($f, 'cam', 'count(active)'), 1, 'stream <active/>');
is(main::sx($f, 'cam', 'count(client)'), 3, '3 clients');
is(main::sx($f, 'cam', 'count(client[publishing])'), 1, 'one client is publishing');
is(main::sx($f, 'cam', 'count(client[active])'), 3, 'all 3 clients active');
is(main::sx($f, 'cam', 'count(client[string-length(flashver) > 0])'), 3, 'every client has a flashver');
for my $el (qw(id time dropped timestamp)) {
    is(main::sx($f, 'cam', "count(client[not(number($el) >= 0)])"), 0, "every client has a numeric $el");
}
is(main::sx($f, 'cam', 'count(client[address="127.0.0.1"])'), 3, 'client address is the IP, no port');
is(main::sx($f, 'cam', 'count(client[avsync])'), 3, 'every client has <avsync>');
my @ids = split /\s+/, main::xpath($f, 'concat(' . join(',', map { "//stream[name=\"cam\"]/client[$_]/id, \" \"" } 1 .. 3) . ')');
is(scalar(keys %{{ map { $_ => 1 } @ids }}), 3, 'client ids differ') or diag("@ids");
is(main::xpath($f, 'string(/rtmp/server/application[name="live"]/live/nclients)'), 3, 'live nclients');
is(main::sx($f, 'cam', 'count(*[not(self::name or self::time or self::bw_in or self::bytes_in or self::bw_out'
    . ' or self::bytes_out or self::bw_audio or self::bw_video or self::client or self::meta or self::nclients'
    . ' or self::publishing or self::active)])'), 0, 'stream has only the C module\'s elements');

# An HTTP-FLV player is a client too, with the C module's flashver for it.
my $flv = main::flv_player("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/cam.flv");
ok(wait_until(sub { ($f, $xml) = main::stat_page(); main::sx($f, 'cam', 'nclients') eq '4' }, 5, 0.1),
   'the HTTP-FLV player joins: nclients 4') or diag($xml);
is(main::sx($f, 'cam', 'count(client[flashver="flv_live 1.1"])'), 1, 'its flashver is "flv_live 1.1"');
is(main::sx($f, 'cam', 'count(client[flashver="flv_live 1.1"][active])'), 1, 'it is active');

# Without the stylesheet directive: no PI. Masks: live has streams but no clients; global neither.
my ($fp, $plain) = main::stat_page('/stat-plain');
unlike($plain, qr/xml-stylesheet/, 'no stylesheet PI without rtmp_stat_stylesheet');
is(main::sx($fp, 'cam', 'nclients'), 4, 'plain page lists the same stream');
my ($fl, $live) = main::stat_page('/stat-live');
is(main::sx($fl, 'cam', 'nclients'), 4, 'rtmp_stat live: stream listed');
is(main::xpath($fl, 'count(//client)'), 0, 'rtmp_stat live: no <client>');
my ($fg, $global) = main::stat_page('/stat-global');
like(main::xpath($fg, 'string(/rtmp/naccepted)'), qr/^\d+$/, 'rtmp_stat global: global counters');
is(main::xpath($fg, 'count(//stream)'), 0, 'rtmp_stat global: no <stream>');

# The C module's own stat.xsl, unchanged, renders the page (xsltproc).
SKIP: {
    my ($xsl, $why) = main::c_stat_xsl();
    skip("the C module's stat.xsl is not available: $why", 5) unless $xsl;
    ($f, $xml) = main::stat_page();
    my ($c, $html, $e) = main::cmd('xsltproc', $xsl, $f);
    is($c, 0, 'xsltproc stat.xsl page.xml succeeds') or diag($e);
    like($html, qr{<title>RTMP statistics</title>}, 'HTML page from stat.xsl');
    like($html, qr{>\s*cam\s*</a>\s*</td>\s*<td align="middle">\s*4\s*</td>}, 'the stream row shows cam and 4 clients')
        or diag($html);
    like($html, qr{H264\W+\w+\W+\d\.\d}, 'video codec, profile and level shown');
    like($html, qr{640x360}, 'video size shown');
}

stop($flv);
ok(wait_until(sub { ($f, $xml) = main::stat_page(); main::sx($f, 'cam', 'nclients') eq '3' }, 3, 0.1),
   'the HTTP-FLV player leaves the stat within 3 s') or diag($xml);
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));



=== TEST 2: stat JSON (nginx-http-flv-module's shape) and Prometheus text (syntax, TYPE lines, per-stream clients, monotonic counters)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /stat.json { rtmp_stat all; rtmp_stat_format json; }
    location /metrics { rtmp_stat all; rtmp_stat_format prometheus; }
}
--- timeout: 120
--- run
my $rtmp = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $pub = publish("$rtmp/cam", loop => 1, timeout => 100);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my @players = (main::ffmpeg_player("$rtmp/cam"), main::cli_player("$rtmp/cam"));
ok(wait_playing('cam', 2), 'two players play');

my ($j, $r, $stream);
my $find = sub {
    my $app = (grep { $_->{name} eq 'live' } map { @{ $_->{applications} || [] } } @{ $j->{'http-flv'}{servers} || [] })[0];
    $stream = $app && (grep { $_->{name} eq 'cam' } @{ $app->{live}{streams} || [] })[0];
    return $app;
};
ok(wait_until(sub {
    $r = main::http_get('/stat.json');
    $j = eval { JSON::PP::decode_json($r->{content}) };
    $j && $find->() && $stream && ($stream->{nclients} // 0) == 3 && $stream->{meta}{video};
}, 10, 0.2), 'JSON parses and lists the stream with 3 clients and meta') or diag($r->{content});
is($r->{status}, 200, 'json: 200');
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'json: Content-Type');
my $top = $j->{'http-flv'} || {};
for my $k (qw(pid uptime naccepted bw_in bytes_in bw_out bytes_out)) {
    like($top->{$k} // '', qr/^\d+$/, "http-flv.$k is a number");
    ok(!ref($top->{$k}) && JSON::PP->new->allow_nonref->encode($top->{$k}) =~ /^\d+$/, "http-flv.$k is unquoted");
}
like($top->{nginx_version} // '', qr/^1\.\d+\.\d+$/, 'http-flv.nginx_version');
is(ref $top->{servers}, 'ARRAY', 'servers is an array');
my $app = $find->();
is($app->{live}{nclients}, 3, 'live.nclients');
is(ref $app->{live}{streams}, 'ARRAY', 'live.streams is an array');
is($stream->{nclients}, 3, 'stream nclients');
ok(JSON::PP::is_bool($stream->{publishing}) && $stream->{publishing}, 'stream publishing: true (a JSON boolean)');
ok(JSON::PP::is_bool($stream->{active}) && $stream->{active}, 'stream active: true');
for my $k (qw(time bw_in bytes_in bw_out bytes_out bw_audio bw_video)) {
    like($stream->{$k} // '', qr/^\d+$/, "stream $k is a number");
}
is($stream->{meta}{video}{width}, 640, 'meta.video.width');
is($stream->{meta}{video}{height}, 360, 'meta.video.height');
is($stream->{meta}{video}{codec}, 'H264', 'meta.video.codec');
is($stream->{meta}{audio}{codec}, 'AAC', 'meta.audio.codec');
my @clients = @{ $stream->{clients} || [] };
is(scalar @clients, 3, '3 clients');
is(scalar(grep { $_->{publishing} } @clients), 1, 'one client publishing');
is(scalar(grep { JSON::PP::is_bool($_->{publishing}) } @clients), 3, 'publishing is a boolean on every client');
is(scalar(grep { ($_->{id} // '') =~ /^\d+$/ && ($_->{address} // '') eq '127.0.0.1'
                 && length($_->{flashver} // '') && ($_->{time} // '') =~ /^\d+$/ } @clients), 3,
   'every client has id, address, flashver, time');

# Prometheus.
my $m1 = main::http_get('/metrics');
is($m1->{status}, 200, 'metrics: 200');
like($m1->{headers}{'content-type'} // '', qr{^text/plain}, 'metrics: Content-Type text/plain');
my ($s1, $type, $errs) = main::parse_prometheus($m1->{content});
is_deeply($errs, [], 'every line is a comment or a sample; TYPE before samples; families grouped') or diag($m1->{content});
ok(!grep({ !/^nginx_rtmp_/ } keys %$type), 'every family is nginx_rtmp_*');
is_deeply([grep { $type->{$_} eq 'counter' && !/_total$/ } sort keys %$type], [], 'counters end in _total');
my $l = 'server="0",application="live",stream="cam"';
my ($key) = grep { /^nginx_rtmp_stream_clients\{/ && /application="live"/ && /stream="cam"/ && /server="/ } keys %$s1;
ok($key, 'nginx_rtmp_stream_clients{server,application,stream="cam"}') or diag($m1->{content});
is($s1->{$key // ''}, 3, 'stream clients = 2 players + publisher');
is($type->{nginx_rtmp_stream_clients}, 'gauge', 'stream clients is a gauge');
my @counters = grep { $type->{$_} eq 'counter' } keys %$type;
cmp_ok(scalar @counters, '>=', 2, 'some counters');
Time::HiRes::sleep(1.5);
my $m2 = main::http_get('/metrics');
my ($s2, undef, $errs2) = main::parse_prometheus($m2->{content});
is_deeply($errs2, [], 'second scrape parses');
my @back;
for my $k (keys %$s1) {
    my ($n) = $k =~ /^([^{]+)/;
    next unless ($type->{$n} // '') eq 'counter';
    push @back, "$k: $s1->{$k} -> " . ($s2->{$k} // 'gone') unless defined $s2->{$k} && $s2->{$k} >= $s1->{$k};
}
is_deeply(\@back, [], 'counters never go back between two scrapes');
my ($rx) = grep { /^nginx_rtmp_(?:stream_)?received_bytes_total(?:\{.*stream="cam".*\})?$/ } sort keys %$s2;
ok($rx && $s2->{$rx} > ($s1->{$rx} // 0), "received bytes grew while publishing ($rx)");
is($s2->{nginx_rtmp_publishers} // $s2->{'nginx_rtmp_publishers{}'}, 1, 'nginx_rtmp_publishers 1');
is($s2->{nginx_rtmp_clients} // $s2->{'nginx_rtmp_clients{}'}, 3, 'nginx_rtmp_clients 3');



=== TEST 3: two workers: every stat answer, whichever worker gives it, lists the players of both; players that quit leave it within 2 s
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT reuseport;
    location /stat { rtmp_stat all; }
    location /stat.json { rtmp_stat all; rtmp_stat_format json; }
    location /flv { flv_live on; }
    location /control { rtmp_control all; }
}
--- timeout: 180
--- run
my $rtmp = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $pub = publish("$rtmp/cam", loop => 1, timeout => 150);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my @rtmp_players = ((map { main::cli_player("$rtmp/cam") } 1 .. 6), (map { main::ffmpeg_player("$rtmp/cam") } 1 .. 2));
ok(wait_playing('cam', scalar @rtmp_players), 'RTMP players play');
# Each connection lands on either worker: add players until both workers have some.
while (main::log_pids(qr/rtmp: live: play "cam", client/) < 2 && @rtmp_players < 24) {
    push @rtmp_players, main::cli_player("$rtmp/cam");
    wait_playing('cam', scalar @rtmp_players);
}
is(scalar(main::log_pids(qr/rtmp: live: play "cam", client/)), 2, 'RTMP players on both workers');
# HTTP-FLV players play from either worker (the one without the publisher pulls the stream over
# its link): start them until two were accepted.
my @flv_players;
for my $try (1 .. 30) {
    last if @flv_players == 2;
    my $ok = () = log_lines(qr/rtmp: live: play "cam".*GET \/flv/);
    my $no = () = log_lines(qr/http-flv: play refused/);
    my $pid = main::flv_player("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/cam.flv");
    my $got = wait_until(sub {
        my $a = () = log_lines(qr/rtmp: live: play "cam".*GET \/flv/);
        my $r = () = log_lines(qr/http-flv: play refused/);
        $a > $ok ? 'accepted' : $r > $no ? 'refused' : '';
    }, 5);
    if ($got eq 'accepted') { push @flv_players, $pid } else { stop($pid) }
}
is(scalar @flv_players, 2, 'two HTTP-FLV players play');
my $n = @rtmp_players + @flv_players;

# 30 answers, XML and JSON, from new connections: each worker answers some, all list every client.
my (%answered, @wrong);
my ($f0, $x0);
ok(wait_until(sub { ($f0, $x0) = main::stat_page(); main::sx($f0, 'cam', 'nclients') eq $n + 1 }, 5, 0.1),
   "stat lists all $n players and the publisher") or diag($x0);
is(main::xpath($f0, 'count(//stream[name="cam"])'), 1, 'the stream is one <stream> for both workers');
for my $i (1 .. 30) {
    if ($i % 2) {
        my ($f, $xml) = main::stat_page();
        my $pid = main::xpath($f, 'string(/rtmp/pid)');
        $answered{$pid}++;
        my $got = join '/', main::sx($f, 'cam', 'nclients'), main::sx($f, 'cam', 'count(client)'),
            main::sx($f, 'cam', 'count(client[publishing])'), main::sx($f, 'cam', 'count(client[flashver="flv_live 1.1"])');
        push @wrong, "xml from $pid: $got" unless $got eq ($n + 1) . '/' . ($n + 1) . '/1/' . scalar(@flv_players);
    } else {
        my $j = eval { JSON::PP::decode_json(main::http_get('/stat.json')->{content}) } || {};
        my $pid = $j->{'http-flv'}{pid} // 'none';
        $answered{$pid}++;
        my ($s) = grep { $_->{name} eq 'cam' } map { @{ $_->{live}{streams} || [] } }
            map { @{ $_->{applications} || [] } } @{ $j->{'http-flv'}{servers} || [] };
        my $got = join '/', $s->{nclients} // 'none', scalar @{ $s->{clients} || [] };
        push @wrong, "json from $pid: $got" unless $got eq ($n + 1) . '/' . ($n + 1);
    }
}
is_deeply(\@wrong, [], "every answer lists $n players + 1 publisher (nclients/clients/publishing/flv)");
is(scalar(keys %answered), 2, 'both workers answered stat requests') or diag(explain(\%answered));

# Half the players quit by themselves: gone from every answer within 2 s.
my @quit = (@rtmp_players[0 .. 3], $flv_players[0]);
stop($_) for @quit;
my $left = $n - @quit + 1;
my $t0 = Time::HiRes::time();
ok(wait_until(sub {
    my @c = map { my ($f) = main::stat_page(); main::sx($f, 'cam', 'nclients') } 1 .. 4;
    !grep { $_ != $left } @c;
}, 2.5, 0.1), "players that quit leave the stat within 2 s ($left clients left)");
note(sprintf 'quit players gone after %.2f s', Time::HiRes::time() - $t0);

# drop subscriber: one request drops the players of both workers and counts them all.
my @rest = (@rtmp_players[4 .. $#rtmp_players], @flv_players[1 .. $#flv_players]);
is(main::control('/control/drop/subscriber?app=live&name=cam'), '200 ' . scalar(@rest),
   'drop subscriber counts the players of both workers');
is(main::wait_exit(5, @rest), 0, 'all dropped players disconnect');
ok(wait_until(sub { my ($f) = main::stat_page(); main::sx($f, 'cam', 'nclients') eq '1' }, 2.5, 0.1),
   'only the publisher is left in the stat');
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));
is(main::control('/control/drop/publisher?app=live&name=cam'), '200 1', 'drop publisher: 1, whichever worker has it');
ok(defined wait_publisher($pub, 5), 'the publisher is disconnected');
ok(wait_until(sub { my ($f) = main::stat_page(); main::xpath($f, 'count(//stream[publishing])') eq '0' }, 2.5, 0.1),
   'no stream publishing in the stat');



=== TEST 4: control: drop subscriber/client/publisher, redirect publisher/subscriber, error statuses
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /stat { rtmp_stat all; }
    location /flv { flv_live on; }
    location /control { rtmp_control all; }
    location /dropper { rtmp_control drop; }
}
--- timeout: 180
--- run
my $rtmp = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $h = "http://127.0.0.1:$TEST_NGINX_HTTP_PORT";
my $nclients = sub { my ($f) = main::stat_page(); main::sx($f, 'cam', 'nclients') };

# Errors first (no session needed).
is(main::control('/control/redirect/publisher?app=live&name=cam'), '500', 'redirect without newname: 500');
is(main::control('/control/redirect/subscriber?newname='), '500', 'redirect with empty newname: 500');
is(main::control('/control/drop/subscriber?srv=1'), '500', 'srv out of range: 500');
is(main::control('/control/drop/subscriber?srv=x'), '500', 'srv not a number: 500');
is(main::control('/control/drop/everyone'), '500', 'undefined method: 500');
is(main::control('/control/record/start?app=live&name=cam'), '204', 'record start of nobody: 204');
is(main::control('/control/record/stop?app=live&name=cam'), '204', 'record stop of nobody: 204');
is(main::control('/control/record/pause?app=live&name=cam'), '500', 'record: undefined method: 500');
like(main::control('/control/bogus/publisher'), qr/^404/, 'unknown section: 404');
like(main::control('/dropper/redirect/publisher?newname=x'), qr/^404/, 'section not enabled (rtmp_control drop): 404');
is(main::control('/dropper/drop/publisher?name=nobody'), '200 0', 'enabled section, nothing matches: 200 0');
is(main::control('/control/x/y/drop/client?name=nobody'), '200 0', 'any prefix: the last two segments count');

# drop subscriber: every player of the stream, RTMP and HTTP-FLV; the publisher stays.
my $pub = publish("$rtmp/cam", loop => 1, timeout => 150);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my @players = (main::ffmpeg_player("$rtmp/cam"), main::cli_player("$rtmp/cam"),
               main::flv_player("$h/flv/live/cam.flv"));
ok(wait_playing('cam', 2) && wait_log(qr/http-flv: http play app="live" name="cam"/), '3 players play');
ok(wait_until(sub { $nclients->() eq '4' }, 5, 0.1), 'stat: 4 clients');
is(main::control('/control/drop/subscriber?app=live&name=nobody'), '200 0', 'drop subscriber of another name: 0');
is(main::control('/control/drop/subscriber?app=other&name=cam'), '200 0', 'drop subscriber of another app: 0');
is(main::wait_exit(0.5, @players), 3, 'nobody dropped by those');
is(main::control('/control/drop/subscriber?app=live&name=cam'), '200 3', 'drop subscriber: 3');
is(main::wait_exit(5, @players), 0, 'the 3 players disconnect (FFmpeg, rtmp play, flv-play exit)');
ok(wait_until(sub { $nclients->() eq '1' }, 2.5, 0.1), 'stat: only the publisher');
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));

# drop client by clientid (the id from the stat page): that one player only.
my @two = (main::cli_player("$rtmp/cam"), main::cli_player("$rtmp/cam"));
ok(wait_until(sub { $nclients->() eq '3' }, 5, 0.1), 'two new players in the stat');
my ($f) = main::stat_page();
my $id = main::sx($f, 'cam', 'string(client[not(publishing)][1]/id)');
my $other = main::sx($f, 'cam', 'string(client[not(publishing)][2]/id)');
like($id, qr/^\d+$/, "player's client id $id");
my $pubid = main::sx($f, 'cam', 'string(client[publishing]/id)');
is(main::control("/control/drop/client?clientid=$id"), '200 1', "drop client clientid=$id: 1");
is(main::wait_exit(5, @two), 1, 'one of the two players disconnects');
ok(wait_until(sub { my ($g) = main::stat_page();
                    main::sx($g, 'cam', "count(client[id=$id])") eq '0' && main::sx($g, 'cam', "count(client[id=$other])") eq '1' },
              2.5, 0.1), 'stat: that id is gone, the other player stays');
is(main::control("/control/drop/subscriber?clientid=$pubid"), '200 0', 'drop subscriber with the publisher\'s id: 0');
is(wait_publisher($pub, 0), undef, 'publisher still running');
is(main::control('/control/drop/client?addr=10.9.8.7'), '200 0', 'drop client of another address: 0');
is(main::control('/control/drop/subscriber?addr=127.0.0.1&app=live&name=cam'), '200 1', 'drop subscriber by addr: 1');
is(main::wait_exit(5, @two), 0, 'the other player disconnects');

# redirect subscriber: players of cam move to cam2.
my $pub2 = publish("$rtmp/cam2", loop => 1, timeout => 150);
ok(wait_published('cam2'), 'second publisher');
my @movers = (main::cli_player("$rtmp/cam"), main::ffmpeg_player("$rtmp/cam"));
ok(wait_until(sub { $nclients->() eq '3' }, 5, 0.1), 'two players on cam');
is(main::control('/control/redirect/subscriber?app=live&name=cam&newname=cam2'), '200 2', 'redirect subscriber: 2');
ok(wait_until(sub { my ($g) = main::stat_page();
                    main::sx($g, 'cam', 'nclients') eq '1' && main::sx($g, 'cam2', 'nclients') eq '3' }, 3, 0.1),
   'stat: the players are on cam2 now') or diag((main::stat_page())[1]);
is(main::wait_exit(1, @movers), 2, 'redirected players stay connected');
ok(wait_playing('cam2', 2), 'the live module played cam2 for them');

# redirect publisher: cam is published as "moved".
is(main::control('/control/redirect/publisher?app=live&name=cam&newname=moved'), '200 1', 'redirect publisher: 1');
ok(wait_until(sub { my ($g) = main::stat_page();
                    main::sx($g, 'moved', 'count(publishing)') eq '1' && main::sx($g, 'cam', 'count(publishing)') eq '0' },
              3, 0.1), 'stat: the stream is published as "moved", cam is not') or diag((main::stat_page())[1]);
ok(wait_published('moved'), 'the live module logged the publish of "moved"');
is(wait_publisher($pub, 0), undef, 'the redirected publisher stays connected') or diag(publisher_log($pub));
my $ps = play_stats("$rtmp/moved", 3);
cmp_ok($ps->{audio}, '>', 50, 'a player of the new name gets its audio') or diag($ps->{stderr});
# The stream keeps the publisher's sequence headers and metadata under its new name (the
# publisher does not send them again).
cmp_ok($ps->{video}, '>', 25, 'a player of the new name gets its video (3 s, keyframe every 2 s)')
    or diag($ps->{stderr});
{
    my $g;
    ok(wait_until(sub { ($g) = main::stat_page(); main::sx($g, 'moved', 'meta/video/width') eq '640' }, 3, 0.2),
       'stat: the redirected stream keeps its meta (width 640)');
}

# drop publisher, by name: that publisher only.
is(main::control('/control/drop/publisher?app=live&name=moved'), '200 1', 'drop publisher: 1');
ok(defined wait_publisher($pub, 5), 'the publisher disconnects');
is(wait_publisher($pub2, 0), undef, 'the other publisher stays');
is(main::control('/control/drop/client?app=live'), '200 3', 'drop client of the app: publisher + 2 players');
is(main::wait_exit(5, $pub2, @movers), 0, 'all of them disconnect');
ok(wait_until(sub { my ($g) = main::stat_page(); main::xpath($g, 'count(//client)') eq '0' }, 2.5, 0.1),
   'stat: no clients left');



=== TEST 5: reload: the publisher and player an old worker keeps until they leave are on the new workers' stat pages (XML and JSON) exactly once, the control API reaches them, and they go when they disconnect
--- workers: 2
--- reloads
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /stat { rtmp_stat all; }
    location /stat.json { rtmp_stat all; rtmp_stat_format json; }
    location /control { rtmp_control all; }
}
--- timeout: 120
--- run
my $rtmp = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live";
my $master = master_pid();
my @old = Test::Nginx::Rtmp::worker_pids($master);
is(scalar @old, 2, 'two workers before the reload');
my $pub = publish("$rtmp/kept", loop => 1, timeout => 100);
ok(wait_log(qr/rtmp: live: publish "kept" \(live\), client: 127/), 'FFmpeg publishes') or diag(publisher_log($pub));
my $player = main::cli_player("$rtmp/kept");
ok(wait_log(qr/rtmp: live: play "kept", client: 127/), 'our client plays');
my ($holder) = map { /\] (\d+)#/ ? $1 : () } log_lines(qr/rtmp: live: publish "kept" \(live\), client: 127/);
ok(wait_until(sub { my ($f) = main::stat_page(); main::sx($f, 'kept', 'nclients') eq '2' }, 5, 0.1),
   'before the reload: the stat lists the publisher and the player');

# The XML page and the JSON page as one answer: (answering pid, streams named kept, nclients,
# clients listed, publishing clients).
my $xml_view = sub {
    my ($f, $body) = main::stat_page('/stat');
    return (main::xpath($f, 'string(/rtmp/pid)'), main::xpath($f, 'count(//stream[name="kept"])'),
            main::sx($f, 'kept', 'nclients'), main::sx($f, 'kept', 'count(client)'),
            main::sx($f, 'kept', 'count(client[publishing])'));
};
my $json_view = sub {
    my $j = eval { JSON::PP::decode_json(main::http_get('/stat.json')->{content}) } || {};
    my @s = grep { $_->{name} eq 'kept' } map { @{ $_->{live}{streams} || [] } }
        map { @{ $_->{applications} || [] } } @{ $j->{'http-flv'}{servers} || [] };
    my @c = map { @{ $_->{clients} || [] } } @s;
    return ($j->{'http-flv'}{pid} // 'none', scalar @s, $s[0] ? $s[0]{nclients} // 'none' : 'none', scalar @c,
            scalar(grep { $_->{publishing} } @c));
};

ok(kill('HUP', $master), 'reload');
# The old workers stop accepting once they log this: every page from now on is a new worker's.
ok(wait_log(qr/gracefully shutting down/, 2, 15), 'both old workers shut down gracefully');
my @new;
ok(wait_until(sub {
    my %was = map { $_ => 1 } @old;
    @new = grep { !$was{$_} } Test::Nginx::Rtmp::worker_pids($master);
    @new == 2;
}, 10), 'two new workers run');
ok(kill(0, $holder), "the old worker $holder still holds the publisher");
like(Test::Nginx::Rtmp::slurp("/proc/$holder/cmdline"), qr/shutting down/, 'and it is shutting down');

my %is_new = map { $_ => 1 } @new;
my (@wrong, %answered);
for my $i (1 .. 20) {
    my ($pid, @got) = $i % 2 ? $xml_view->() : $json_view->();
    my $what = ($i % 2 ? 'xml' : 'json') . " from $pid";
    $answered{$pid}++;
    push @wrong, "$what: an old worker answered" unless $is_new{$pid};
    push @wrong, "$what: streams/nclients/clients/publishing " . join('/', @got) unless "@got" eq '1 2 2 1';
}
is_deeply(\@wrong, [], 'after the reload, 20 answers of the new workers (XML and JSON) list the old worker\'s stream once, with its publisher and player once each')
    or diag(explain(\%answered));
is(wait_publisher($pub, 0), undef, 'the publisher is still connected') or diag(publisher_log($pub));

# The player leaves by itself: gone from the new workers' pages.
stop($player);
ok(wait_until(sub { my @x = $xml_view->(); my @j = $json_view->(); "@x[1..4] @j[1..4]" eq '1 1 1 1 1 1 1 1' }, 3, 0.1),
   'the player that quit is gone from XML and JSON; the publisher stays, once');

# The control API of a new worker reaches the publisher in the old one.
is(main::control('/control/drop/publisher?app=live&name=kept'), '200 1', 'drop publisher from a new worker: 1');
ok(defined wait_publisher($pub, 5), 'the publisher is disconnected');
ok(wait_until(sub { my @x = $xml_view->(); my @j = $json_view->(); $x[1] eq '0' && $j[1] == 0 }, 3, 0.1),
   'the stream is gone from XML and JSON');
ok(wait_until(sub { !grep { kill 0, $_ } @old }, 15), 'the old workers exit once their sessions are gone');
my @x = $xml_view->();
my @j = $json_view->();
is("$x[1] $j[1]", '0 0', 'and nothing of them is left on the pages');
--- no_error_log
[error]
